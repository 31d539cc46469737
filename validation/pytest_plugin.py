"""pytest plugin for rehead parity checks (fixtures and ``assert_parity``)."""
