"""In-memory adapters: real, reusable implementations of every port, for unit tests and `custsync dev`."""
