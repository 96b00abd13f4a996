"""The directive service and everything under it; runs without Kubernetes."""
