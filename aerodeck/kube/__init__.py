"""The engine's view of Kubernetes: the AKO resources it reads and patches, through the official client."""
