"""Protocol and data code with no web framework: UWS and VOSI documents, VOTables, spectra."""
