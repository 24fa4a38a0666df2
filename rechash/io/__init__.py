"""Files, format only: ``atomic`` (write-then-rename outputs), ``store`` (checksummed arrays,
id maps, the seen matrix, library versions) and ``export`` (codes for another serving stack)."""
