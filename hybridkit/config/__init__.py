"""The run config: its pydantic models and loading (run_config), one-line error explanations (explain),
the generated reference (reference), and plugins built from config sections (sections)."""
