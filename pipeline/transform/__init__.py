"""Transform: raw task pages and listings into typed rows, bad records into rejects."""
