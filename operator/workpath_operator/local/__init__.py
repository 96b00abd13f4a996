"""Local mode, the embedded default: the service with local workers, no cluster."""
