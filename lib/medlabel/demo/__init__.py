"""Demo studies built offline from real images that ship inside installed packages."""
