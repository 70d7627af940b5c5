"""The command line: init-db, create-account, create-admin, seed-demo, through Flask's CLI runner."""

import sqlalchemy as sa

from usetix.database.engine import db
from usetix.database.models import Account, Admin, Attendee, Event


def count(app, model, *where):
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def test_create_account_prints_its_id(app, runner):
    result = runner.invoke(args=["create-account", "Initech Shows"])
    assert result.exit_code == 0
    account_id = int(result.output.strip())
    with app.app_context():
        assert db.session.get(Account, account_id).name == "Initech Shows"


def test_create_account_rejects_an_empty_name(app, runner):
    result = runner.invoke(args=["create-account", "   "])
    assert result.exit_code == 1
    assert "account name must be 1 to 200 characters" in result.output
    assert count(app, Account) == 0


def new_account(runner) -> int:
    return int(runner.invoke(args=["create-account", "Initech Shows"]).output)


def test_create_admin_from_stdin_can_log_in(app, runner, auth):
    account_id = new_account(runner)
    result = runner.invoke(args=["create-admin", "--account", str(account_id), "--email", "Ops@Initech.Example",
                                 "--password-stdin"], input="a long enough password\n")
    assert result.exit_code == 0, result.output
    assert "ops@initech.example" in result.output
    assert auth.login(email="ops@initech.example", password="a long enough password").status_code == 302


def test_create_admin_from_the_hidden_prompt(app, runner):
    account_id = new_account(runner)
    result = runner.invoke(args=["create-admin", "--account", str(account_id), "--email", "ops@initech.example"],
                           input="prompted password\nprompted password\n")
    assert result.exit_code == 0, result.output
    assert "prompted password" not in result.output
    assert count(app, Admin) == 1


def test_create_admin_bad_input_writes_nothing(app, runner):
    account_id = new_account(runner)
    base = ["create-admin", "--password-stdin"]
    cases = [
        (["--account", "999", "--email", "a@b.example"], "long enough password", "no account with id 999"),
        (["--account", str(account_id), "--email", "not-an-email"], "long enough password", "not an email"),
        (["--account", str(account_id), "--email", "a@b.example"], "short", "at least 10 characters"),
    ]
    for args, password, message in cases:
        result = runner.invoke(args=base + args, input=password + "\n")
        assert result.exit_code == 1, args
        assert message in result.output
    assert count(app, Admin) == 0
    runner.invoke(args=base + ["--account", str(account_id), "--email", "a@b.example"], input="long enough password\n")
    duplicate = runner.invoke(args=base + ["--account", str(account_id), "--email", "A@B.example"],
                              input="long enough password\n")
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.output
    assert count(app, Admin) == 1


def test_seed_demo_is_idempotent_and_logs_in(app, runner, client, auth):
    first = runner.invoke(args=["seed-demo", "--password", "demo password 1"])
    assert first.exit_code == 0, first.output
    assert "admin@acme.example" in first.output and "admin@globex.example" in first.output
    totals = (count(app, Account), count(app, Event), count(app, Attendee))
    assert runner.invoke(args=["seed-demo", "--password", "demo password 1"]).exit_code == 0
    assert (count(app, Account), count(app, Event), count(app, Attendee)) == totals
    with app.app_context():
        for name in ("Acme Events", "Globex Live"):
            account_id = db.session.scalar(sa.select(Account.id).where(Account.name == name))
            assert count(app, Event, Event.account_id == account_id) >= 30
            assert count(app, Attendee, Attendee.account_id == account_id) > 0
    assert auth.login(email="admin@globex.example", password="demo password 1").status_code == 302
    assert "Globex" in client.get("/admin/events").text and "Acme" not in client.get("/admin/events").text


def test_seed_demo_refuses_a_short_password(app, runner):
    result = runner.invoke(args=["seed-demo", "--password", "short"])
    assert result.exit_code == 1
    assert count(app, Account) == 0 and count(app, Event) == 0


def test_init_db_is_idempotent(tmp_path):
    from usetix import create_app

    from ..helpers import make_test_config

    fresh = create_app({**make_test_config(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"})
    cli = fresh.test_cli_runner()
    assert cli.invoke(args=["init-db"]).exit_code == 0
    assert cli.invoke(args=["init-db"]).exit_code == 0
    with fresh.app_context():
        assert "api_tokens" in sa.inspect(db.engine).get_table_names()
