"""The Flask extensions other than the database's (``db`` is in ``usetix/database/engine.py``),
created unbound here and bound to an app in create_app()."""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

login_manager = LoginManager()
csrf = CSRFProtect()
migrate = Migrate()
