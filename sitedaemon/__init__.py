"""The site daemon: watches a folder at a site and reports media files to the orchestrator.

Standalone: the standard library, watchdog and `pipeline_project.fileops` only; it never
imports Django. Run it as `python -m sitedaemon --help`.
"""

__version__ = "0.1.0"
