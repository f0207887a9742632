"""Wire formats: Avro schemas (``avro/*.avsc``), typed records, codec and registry."""
