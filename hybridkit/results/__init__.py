"""Reading a finished run back (truth, traces), scoring a sorter against it, and the HTML report."""
