"""Model size presets (``tiny``, ``small``, ``medium``, ``large``) as YAML files."""
