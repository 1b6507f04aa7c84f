"""The service: the container's main process (supervisor) and the KCL daemon's properties."""
