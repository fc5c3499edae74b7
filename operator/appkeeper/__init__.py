"""appkeeper: one small App resource in, the workload and everything it implies out, kept so."""
