"""appkeeper: one small App resource in, the workload and everything it implies out, kept so."""

__version__ = "0.1.0"  # the one place: pyproject, `appkeeper --version`, the chart and the image follow
