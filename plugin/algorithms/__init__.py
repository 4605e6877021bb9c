"""Processing algorithms: the single way the plugin runs a job (toolbox, dialog,
dock, model builder and ``qgis_process`` all end here)."""
