"""The numbered SQL migrations, shipped inside the package so that a non-editable install can migrate."""
