"""What a workflow is: the spec, loading it from a file, argv templates, the compiled DAG."""
