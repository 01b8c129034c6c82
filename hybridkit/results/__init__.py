"""Reading a finished run back (truth, traces, the exact plan), proving it (``verify``), scoring a
sorter against it, and the HTML report."""
