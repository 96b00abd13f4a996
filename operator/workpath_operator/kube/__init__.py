"""The Kubernetes side: kopf handlers, the operator process, Routines, Events, TokenReview."""
