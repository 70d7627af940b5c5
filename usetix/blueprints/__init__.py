"""One module (or package) per blueprint: meta, auth, dashboard, api."""
