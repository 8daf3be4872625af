"""DVC pipeline stages: one module per stage, each with a ``main()`` that ``dvc.yaml`` calls."""
