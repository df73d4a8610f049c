"""The audience sync DAG end to end: dag.test() on SQLite, Klaviyo sandbox over loopback.

Expected rows are built from the sandbox's seeded ground truth (profiles, consent, list membership)
with their own formatting, hashing and ordering — not from core.subscribers.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import hmac
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowsync_dev.sandbox import data as truth

HEADER = ("Profile ID,Email,First Name,Last Name,Created,Updated,Email Marketing Consent,Consent Timestamp,"
          "Can Receive Email Marketing,Suppression Reason,Lists")
HASH_KEY = "test-hmac-key-5f1d0c"


def expected_rows(acct: truth.SandboxAccount, *, updated_after: datetime | None = None, hash_key: bytes | None = None,
                  hash_emails: bool = False, drop_names: bool = False) -> list[list[str]]:
    rows = []
    for i in range(acct.n_profiles):
        if updated_after is not None and acct.profile_updated(i) <= updated_after:
            continue
        profile = acct.profile(i)
        a = profile["attributes"]
        marketing = a["subscriptions"]["email"]["marketing"]
        email = a["email"]
        if hash_emails:
            raw = email.strip().lower().encode()
            email = hmac.new(hash_key, raw, hashlib.sha256).hexdigest() if hash_key else hashlib.sha256(raw).hexdigest()
        lists = sorted(x.name for x in acct.lists if acct.is_member(x.id, i))
        rows.append([
            profile["id"], email, "" if drop_names else a["first_name"], "" if drop_names else a["last_name"],
            a["created"], a["updated"], marketing["consent"], marketing["consent_timestamp"] or "",
            "true" if marketing["can_receive_email_marketing"] else "false",
            ";".join(s["reason"] for s in marketing["suppression"]), ";".join(lists),
        ])
    return sorted(rows, key=lambda r: r[0])


def as_csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    out.write(HEADER + "\n")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def summary_of(home: Path) -> dict:
    found = sorted(home.rglob("summary.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def profile_requests(srv) -> list[dict]:
    return [r for r in srv.requests() if r["path"] == "/api/profiles" and r["status"] == 200]


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory(seed=7, time_scale=20, profiles=2000)


def test_full_export_of_20k_profiles_equals_seeded_truth(sandbox_factory, flowsync_env, run_dag):
    big = sandbox_factory(seed=11, time_scale=20, profiles=20_000)
    home = flowsync_env(big)
    result = run_dag("klaviyo_audience_sync", {"format": "csv"})
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    text = Path(summary["files"]["data"]).read_text()
    rows = expected_rows(big.account)
    assert len(rows) == 20_000
    assert text.splitlines()[0] == HEADER
    assert text == as_csv(rows)
    ids = [line.split(",", 1)[0] for line in text.splitlines()[1:]]
    assert ids == sorted(ids) and len(set(ids)) == 20_000
    assert any(";" in r[10] for r in rows) and any(r[10] == "" for r in rows)  # the Lists column is exercised
    # the maximum page size: 200 profile pages, each at most once (no 429, no re-fetch)
    assert len(profile_requests(big)) == 200
    assert not [r for r in big.requests() if r["status"] == 429]
    export = summary["diagnostics"]["export"]
    assert export["profiles"] == 20_000 and export["profile_pages"] == 200
    # rows are sorted in runs of 5k and list memberships in runs of 20k: neither is ever held whole
    assert export["sort_runs"] == 4
    assert export["max_rows_in_memory"] <= 20_000 < export["list_memberships"]
    # nothing but counts, paths and masked previews cross XCom
    xcom_text = json.dumps([x[3] for x in result.xcoms], default=str)
    assert big.account.profile(0)["attributes"]["email"] not in xcom_text
    assert len(xcom_text) < 50_000
    # the temporary sort runs are gone
    assert not list(home.rglob(".audience-work-*")) and not list(home.rglob(".work-*"))


def test_hash_with_key_and_drop_names(sandbox, flowsync_env, run_dag):
    home = flowsync_env(sandbox, FLOWSYNC_HASH_KEY=HASH_KEY)
    result = run_dag("klaviyo_audience_sync", {"format": "csv", "hashEmails": True, "dropNames": True})
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    text = Path(summary["files"]["data"]).read_text()
    assert text == as_csv(expected_rows(sandbox.account, hash_key=HASH_KEY.encode(), hash_emails=True,
                                        drop_names=True))
    assert "@" not in text
    assert HASH_KEY not in result.output and HASH_KEY not in json.dumps(summary)
    assert summary["diagnostics"]["privacy"] == {**summary["diagnostics"]["privacy"], "hashEmails": True,
                                                 "keyed": True, "dropNames": True}
    assert summary["diagnostics"]["warnings"] == []


def test_hash_without_key_is_plain_sha256_with_a_warning(sandbox, flowsync_env, run_dag, monkeypatch):
    home = flowsync_env(sandbox)
    monkeypatch.delenv("FLOWSYNC_HASH_KEY", raising=False)
    result = run_dag("klaviyo_audience_sync", {"format": "csv", "hashEmails": True})
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    text = Path(summary["files"]["data"]).read_text()
    assert text == as_csv(expected_rows(sandbox.account, hash_emails=True))
    assert any("dictionary" in w and "FLOWSYNC_HASH_KEY" in w for w in summary["diagnostics"]["warnings"])
    assert summary["diagnostics"]["privacy"]["keyed"] is False


def test_incremental_returns_only_changed_profiles(sandbox, flowsync_env, run_dag):
    acct = sandbox.account
    cut = datetime.combine(acct.yesterday - timedelta(days=20), datetime.min.time(), tzinfo=UTC)
    home = flowsync_env(sandbox)
    result = run_dag("klaviyo_audience_sync", {"format": "csv", "audienceMode": "incremental",
                                               "updatedSince": cut.isoformat()})
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    text = Path(summary["files"]["data"]).read_text()
    rows = expected_rows(acct, updated_after=cut)
    assert 0 < len(rows) < acct.n_profiles
    assert text == as_csv(rows)
    assert summary["audienceMode"] == "incremental" and summary["updatedSince"] == cut.isoformat()
    assert len(profile_requests(sandbox)) == -(-len(rows) // 100)  # only the changed profiles were paged


def test_incremental_default_cutoff_is_a_day_before_the_run(sandbox, flowsync_env, run_dag):
    home = flowsync_env(sandbox)
    before = datetime.now(UTC)
    result = run_dag("klaviyo_audience_sync", {"format": "csv", "audienceMode": "incremental"})
    after = datetime.now(UTC)
    assert result.ok, result.output[-3000:]
    summary = summary_of(home)
    cut = datetime.fromisoformat(summary["updatedSince"])
    assert before - timedelta(hours=24, seconds=60) <= cut <= after - timedelta(hours=24)
    text = Path(summary["files"]["data"]).read_text()
    assert text == as_csv(expected_rows(sandbox.account, updated_after=cut))


def test_row_budget_breach_fails_before_the_file(sandbox, flowsync_env, run_dag):
    home = flowsync_env(sandbox)
    result = run_dag("klaviyo_audience_sync", {"format": "csv", "rowBudget": 500})
    assert not result.ok
    assert result.tasks["export"] == "failed"
    assert "row budget exceeded" in result.output and "profiles > rowBudget 500" in result.output
    assert not list(home.rglob("subscribers.csv"))
    assert not list(home.rglob(".work-*")) and not list(home.rglob("*.tmp"))
    # it stopped paging as soon as the budget was passed
    assert len(profile_requests(sandbox)) <= 6


@pytest.mark.parametrize(
    ("conf", "env", "message"),
    [
        ({}, {"KLAVIYO_ENABLE": "false"}, "Klaviyo disabled: set KLAVIYO_ENABLE=true"),
        ({"private_api_key": "pk_secret_in_conf"}, {}, "private_api_key must not be passed in the run's conf"),
        ({"mode": "live"}, {"FLOWSYNC_STORAGE_BACKEND": "auto"}, "Live mode needs storage"),
        ({"updatedSince": "2025-01-01T00:00:00+00:00"}, {}, "updatedSince only applies to audienceMode=incremental"),
    ],
)
def test_refusals_call_nothing(sandbox, flowsync_env, run_dag, conf, env, message):
    flowsync_env(sandbox, **env)
    result = run_dag("klaviyo_audience_sync", conf)
    assert not result.ok
    assert result.tasks["plan"] == "failed"
    assert message in result.output
    assert sandbox.requests() == []


def test_faults_give_identical_bytes(sandbox_factory, flowsync_env, run_dag):
    clean = sandbox_factory(seed=7, time_scale=20, profiles=2000)
    faulty = sandbox_factory(seed=7, time_scale=20, profiles=2000, fault_rate=0.1)
    outputs = []
    for srv in (clean, faulty):
        home = flowsync_env(srv)
        result = run_dag("klaviyo_audience_sync", {"format": "csv"})
        assert result.ok, result.output[-3000:]
        outputs.append(Path(summary_of(home)["files"]["data"]).read_bytes())
        assert srv.api_key not in result.output
        home.rename(home.with_name(f"flowsync-{srv.url.rsplit(':', 1)[1]}"))
    assert outputs[0] == outputs[1]
    assert outputs[0].decode() == as_csv(expected_rows(clean.account))
    assert [r for r in faulty.requests() if r.get("fault")], "the faulty sandbox injected no fault"


def test_json_format_matches_csv_rows(sandbox, flowsync_env, run_dag):
    home = flowsync_env(sandbox)
    result = run_dag("klaviyo_audience_sync", {"format": "json", "dropNames": True})
    assert result.ok, result.output[-3000:]
    data = json.loads(Path(summary_of(home)["files"]["data"]).read_text())
    expected = list(csv.DictReader(io.StringIO(as_csv(expected_rows(sandbox.account, drop_names=True)))))
    assert data == expected


# ---------------------------------------------------------------- PII retention (no HTTP involved)

def _run_dir(home: Path, name: str) -> Path:
    folder = home / "runs" / "klaviyo_audience_sync" / "ACCT" / name
    folder.mkdir(parents=True)
    (folder / "subscribers.csv").write_text(HEADER + "\n")
    return folder


def test_cleanup_removes_the_uploaded_folder_at_once_by_default(tmp_path, monkeypatch):
    from flowsync_provider.syncs.audience import cleanup_run_folder

    home = tmp_path / "home"
    monkeypatch.setenv("FLOWSYNC_HOME", str(home))
    monkeypatch.delenv("FLOWSYNC_PII_RETENTION_HOURS", raising=False)
    uploaded, other = _run_dir(home, "run1"), _run_dir(home, "run2")
    outcome = cleanup_run_folder(uploaded)
    assert not uploaded.exists() and outcome["kept"] is False
    assert other.exists()  # not uploaded: never touched


def test_cleanup_keeps_folders_for_the_retention_then_purges(tmp_path, monkeypatch):
    from flowsync_provider.syncs.audience import cleanup_run_folder

    home = tmp_path / "home"
    monkeypatch.setenv("FLOWSYNC_HOME", str(home))
    monkeypatch.setenv("FLOWSYNC_PII_RETENTION_HOURS", "48")
    first, second = _run_dir(home, "run1"), _run_dir(home, "run2")
    now = time.time()
    assert cleanup_run_folder(first, now=now)["kept"] is True
    # two days later the next upload's cleanup removes the first folder, keeps its own
    outcome = cleanup_run_folder(second, now=now + 48 * 3600 + 1)
    assert outcome["removed"] == [str(first.resolve())]
    assert not first.exists() and second.exists()


def test_cleanup_refuses_paths_outside_the_run_folders(tmp_path, monkeypatch):
    from flowsync_provider.core.errors import ParamError
    from flowsync_provider.syncs.audience import cleanup_run_folder

    monkeypatch.setenv("FLOWSYNC_HOME", str(tmp_path / "home"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(ParamError, match="not a run folder"):
        cleanup_run_folder(outside)
    assert outside.exists()


@pytest.mark.parametrize("conf", [{"audienceMode": "weekly"}, {"updatedSince": "yesterday"}, {"rowBudget": 0}])
def test_param_schema_refuses_bad_triggers(dagbag, conf):
    params = copy.deepcopy(dagbag.get_dag("klaviyo_audience_sync").params)
    with pytest.raises(Exception) as info:
        params.update(conf)
        params.validate()
    assert any(key in str(info.value) for key in conf)


# ---------------------------------------------------------------- bounded-memory sort (no HTTP involved)

def test_external_sort_orders_dedupes_and_joins_unsorted_input(tmp_path):
    import random

    from flowsync_provider.syncs.audience import RunSorter, join_lists, latest_per_key

    rng = random.Random(5)
    ids = [f"P{n:05d}" for n in range(1000)]
    arrivals = ids + rng.sample(ids, 50)  # 50 profiles come twice; the second copy is the fresh one
    rng.shuffle(arrivals)
    seen: dict[str, int] = {}
    profiles = RunSorter(tmp_path, "profiles", chunk_rows=64)
    for pid in arrivals:
        seen[pid] = seen.get(pid, 0) + 1
        profiles.add(pid, [pid, f"copy{seen[pid]}"])
    members = RunSorter(tmp_path, "members", chunk_rows=50)
    membership = {pid: sorted(rng.sample(["A", "B", "C"], rng.randint(0, 3))) for pid in ids}
    pairs = [(pid, name) for pid, names in membership.items() for name in names] + [("ZZ-not-a-profile", "A")]
    rng.shuffle(pairs)
    for pid, name in pairs:
        members.add(pid, name)
    out = list(join_lists(latest_per_key(profiles.merged()), members.merged()))
    assert [key for key, _, _ in out] == sorted(ids)
    assert all(payload == [key, f"copy{seen[key]}"] for key, payload, _ in out)
    assert all(sorted(names) == membership[key] for key, _, names in out)
    assert len(profiles.runs) == -(-len(arrivals) // 64) and profiles.max_buffered <= 64


def test_json_stream_writer_matches_write_json(tmp_path):
    from flowsync_provider.core.csvio import sample, write_json
    from flowsync_provider.core.schemas import SUBSCRIBERS_COLUMNS
    from flowsync_provider.syncs.audience import JsonArrayStreamWriter

    rows = [{"Profile ID": f"P{i}", "Email": f"ünï{i}@example.com", "First Name": 'A "quoted"\nname',
             "Can Receive Email Marketing": i % 2 == 0} for i in range(3)]
    for n in (0, 1, 3):
        with JsonArrayStreamWriter(tmp_path / f"s{n}.json", SUBSCRIBERS_COLUMNS) as writer:
            for row in rows[:n]:
                writer.write_row(row)
        write_json(tmp_path / f"w{n}.json", sample(SUBSCRIBERS_COLUMNS, rows[:n], n=n))
        assert (tmp_path / f"s{n}.json").read_bytes() == (tmp_path / f"w{n}.json").read_bytes()


# ---------------------------------------------------------------- a crashed export leaves no PII behind

EMAIL_TOKEN = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")

KILLED_EXPORT = """
import json, sys
from pathlib import Path
from flowsync_provider.core.params import SyncRequest
from flowsync_provider.core.summary import run_folder
from flowsync_provider.klaviyo import KlaviyoClient
from flowsync_provider.syncs.audience import export_audience

cfg = json.loads(sys.argv[1])
plan = {"request": SyncRequest(format="csv", rowBudget=100_000_000).to_dict(), "updated_since": None}
folder = run_folder("klaviyo_audience_sync", "manual__killed", cfg["account"])
with KlaviyoClient(cfg["api_key"], base_url=cfg["url"], time_scale=cfg["time_scale"],
                   limiter_url="memory://") as client:
    export_audience(client, plan, folder, hash_key=None, chunk_rows=cfg["chunk_rows"])
"""


def files_with_emails(home: Path, emails: set[bytes]) -> dict[Path, int]:
    """Every file under ``home`` holding at least one profile email → its size in bytes."""
    found = {}
    for path in home.rglob("*"):
        if path.is_file() and not path.is_symlink() and emails & set(EMAIL_TOKEN.findall(path.read_bytes())):
            found[path] = path.stat().st_size
    return found


def test_sigkilled_export_leaves_no_pii_after_the_next_run(sandbox_factory, flowsync_env, run_dag):
    """A SIGKILL mid-export skips every cleanup; the next run's sweep must remove the dead run's work files."""
    big = sandbox_factory(seed=11, time_scale=5, profiles=20_000)
    home = flowsync_env(big)
    emails = {big.account.profile(i)["attributes"]["email"].encode() for i in range(big.account.n_profiles)}
    cfg = {"api_key": big.api_key, "url": big.url, "time_scale": big.time_scale,
           "account": big.account.account_id, "chunk_rows": 500}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, json.dumps(cfg)], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180  # a guard against a hung child, not a timing assertion
    while not list(home.rglob("profiles.*.jsonl")):
        assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
        assert time.monotonic() < deadline, "the export wrote no sort run"
        time.sleep(0.05)
    assert proc.poll() is None, "the export finished before the kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = files_with_emails(home, emails)
    assert left, "the kill landed after the export had cleaned up: nothing to prove"
    print(f"PII left by the killed export: {sum(left.values())} bytes in {len(left)} files")

    result = run_dag("klaviyo_audience_sync", {"format": "csv"})
    assert result.ok, result.output[-3000:]
    data = Path(summary_of(home)["files"]["data"])
    assert set(EMAIL_TOKEN.findall(data.read_bytes())) == emails  # the scanner sees every email
    left = files_with_emails(home, emails)
    assert set(left) == {data}, sorted(str(p.relative_to(home)) for p in left)
