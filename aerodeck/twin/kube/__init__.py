"""The Kubernetes side of the fleet twin: an in-memory object store (``store``), the API server emulator and
the :class:`~aerodeck.twin.kube.api.KubeTwin` composition (``api``), AKO's admission webhooks (``admission``),
the objects built from a fleet file (``objects``) and kubeconfig files for clients (``kubeconfig``).
The AKO reconcile emulation lives in :mod:`aerodeck.twin.ako`."""
