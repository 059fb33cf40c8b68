"""The published methods, composed from the layers below: one module each."""
