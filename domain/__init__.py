"""Pure ride-hailing logic: no I/O, no imports of our other packages."""
