"""tes-template-backend: a teaching template of a tes-core compute plugin.

Copy the folder ``plugins/_template`` and rename it to start your own plugin;
see its README.md.
"""

__version__ = "0.1.0"
