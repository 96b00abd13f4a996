"""The node tier: the chart's own images, built here, run as real pods on a real kubelet with containerd."""
