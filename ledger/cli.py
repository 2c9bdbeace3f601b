"""The `ledger` command: set up, operate, export and audit the ledger.

Every command fails with one line on stderr and a non-zero exit, never a
traceback: bad input is the operator's to fix, and the message says how.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import wraps
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ledger.config import Config, ConfigError, settings_table
from ledger.domain.erasure import DEFAULT_REASON, REASON_CODES, REASONS

console = Console(stderr=True, soft_wrap=True)
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(click.ClickException):
    """A one-line failure."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _known_errors() -> tuple[type[BaseException], ...]:
    from ledger.attestation.ca import AttestationKeyError
    from ledger.audit.export import ExportError
    from ledger.audit.replay import ReplayError
    from ledger.crypto import CryptoError
    from ledger.domain.base import DomainError
    from ledger.keys import KeyFileError
    from ledger.projections.runner import ProjectionStalled
    from ledger.store.db import StoreError
    from ledger.store.tokens import TokenError
    from ledger.trust import TrustError
    from ledger.witness.state import StateError

    return (
        ConfigError,
        AttestationKeyError,
        TrustError,
        CryptoError,
        DomainError,
        ExportError,
        KeyFileError,
        ProjectionStalled,
        ReplayError,
        StoreError,
        TokenError,
        StateError,
        OSError,
    )


def friendly(command: Callable) -> Callable:
    """Turn expected failures into `error: <one line>` and exit status 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except click.ClickException:
            raise
        except _known_errors() as exc:
            raise CliError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

    return wrapper


def _config() -> Config:
    try:
        return Config.from_env()
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


def _ledger(init: bool = False) -> Any:
    from ledger.store.application import Ledger

    if not init:
        return Ledger.open_existing(_config())  # only `init` may create or migrate a ledger
    ledger = Ledger(_config())
    ledger.init()
    return ledger


@click.group()
def main() -> None:
    """CRCN certification ledger: signed, hash-chained, verifiable by anyone."""


@main.command()
@friendly
def init() -> None:
    """Create or migrate the schema, a signing key, the trust anchor, the master key and the CA.

    Idempotent: run again (or on several nodes at once), it changes nothing.
    """
    from ledger.services.external_id_index import needs_rebuild
    from ledger.store.application import Ledger

    ledger = Ledger(_config())
    before, after = ledger.init()
    _create_projection_tables(ledger)
    click.echo(
        f"ledger ready: {ledger.config.database_url.split('@')[-1]}, key {ledger.keyring.active().kid}"
    )
    migrated = f"migrated from {before}" if before != after else "up to date"
    click.echo(f"schema version {after} ({migrated})")
    if needs_rebuild(ledger):  # registrations older than the index, or a restored log
        _echo_rebuilt(ledger)
    found = ledger.trust_anchor_source()
    if found is not None:
        anchor, source = found
        click.echo(f"trust anchor ({source}; publish it and give it to auditors out of band):")
        click.echo(f"  {anchor.to_string()}")
        click.echo(f"  log origin {anchor.origin}, key {anchor.kid}")
    _echo_attestation_ca(ledger)


def _echo_attestation_ca(ledger: Any) -> None:
    """Which CA attestation PDFs chain to (its fingerprint is logged at first use)."""
    from ledger.attestation import ca

    identity = ca.load(ledger.config)
    click.echo(
        f"attestation CA (SHA-256 {identity.fingerprint}), served at /.well-known/attestation-ca.pem"
    )


@main.command("config")
def show_config() -> None:
    """Print every setting with its default (the README table)."""
    click.echo(settings_table())


# --- keys ------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Signing keys: init, rotate, list."""


@keys.command("init")
@friendly
def keys_init() -> None:
    """Create the first signing key, the master key and the attestation CA if missing; log them."""
    from functools import partial

    from ledger.attestation import ca
    from ledger.services.attestation_check import ca_event_sound

    ledger = _ledger(init=True)
    ledger.recorder.announce_active_key()
    click.echo(f"active key {ledger.keyring.active().kid}")
    identity = ca.load(ledger.config)
    seq = ca.ensure_published(ledger.recorder, identity, partial(ca_event_sound, ledger))
    click.echo(f"attestation CA {identity.fingerprint} (SHA-256), logged at seq {seq}")


@keys.command("rotate")
@friendly
def keys_rotate() -> None:
    """Endorse a new key with a rotation event signed by the key it replaces."""
    ledger = _ledger()
    old = ledger.signing_key().kid
    new = ledger.keyring.generate()
    seq = ledger.recorder.rotate(new)
    ledger.keyring.activate(new.kid)
    click.echo(f"rotated: {old} -> {new.kid} (endorsed by {old} at seq {seq})")


@keys.command("list")
@friendly
def keys_list() -> None:
    """Every key the endorsement chain accepts, the seqs it may sign, and whether held here."""
    ledger = _ledger()
    history = ledger.key_history()
    held = {k.kid for k in ledger.keyring.all()} if ledger.keyring.directory.is_dir() else set()
    table = Table("kid", "endorsed at seq", "signs seqs", "held here", "status")
    for key in history.keys.values():
        status = "current" if key.kid == history.current else "replaced"
        if key.compromised_since is not None:
            status = f"compromised from seq {key.compromised_since}"
        until = "" if key.valid_until is None else str(key.valid_until)
        table.add_row(
            key.kid,
            str(key.endorsed_at),
            f"{key.valid_from}–{until}",
            "yes" if key.kid in held else "no",
            status,
        )
    Console().print(table)
    for seq, problem in history.rejected:
        console.print(f"rejected key event at seq {seq}: {problem}")


@keys.command("anchor")
@friendly
def keys_anchor() -> None:
    """Print the trust anchor: the line to publish and give to auditors out of band."""
    found = _ledger().trust_anchor_source()
    if found is None:
        raise CliError("no trust anchor: run `ledger init` or set LEDGER_TRUST_ANCHOR")
    anchor, source = found
    console.print(f"trust anchor from {source}: log origin {anchor.origin}, key {anchor.kid}")
    click.echo(anchor.to_string())


@keys.command("compromised")
@click.option("--kid", required=True, help="The compromised key (already rotated out).")
@click.option("--since", required=True, type=int, help="First seq whose signature by it is void.")
@friendly
def keys_compromised(kid: str, since: int) -> None:
    """Declare a replaced key compromised: its signatures from seq SINCE on become invalid."""
    from ledger.trust import KEY_COMPROMISED, compromise

    seq = _ledger().recorder.declare(KEY_COMPROMISED, compromise(kid, since))
    click.echo(f"key {kid} declared compromised from seq {since} (recorded at seq {seq})")


# --- tokens ----------------------------------------------------------------


@main.group()
def tokens() -> None:
    """API bearer tokens: create, list, revoke."""


@tokens.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="events:append, audit:read, admin, metrics, centre:<id>, candidate:<id>",
)
@click.option("--label", default="", help="What the token is for.")
@friendly
def tokens_create(scopes: tuple[str, ...], label: str) -> None:
    """Create a token; it is printed once and stored only hashed."""
    from ledger.store.tokens import TokenStore

    token_id, token = TokenStore(_ledger().db).create(list(scopes), label)
    console.print(f"token {token_id} created with scopes {' '.join(sorted(set(scopes)))}")
    click.echo(token)


@tokens.command("list")
@friendly
def tokens_list() -> None:
    from ledger.store.tokens import TokenStore

    table = Table("id", "scopes", "label", "created", "revoked")
    for row in TokenStore(_ledger().db).list():
        table.add_row(*(str(row[k] or "") for k in ("id", "scopes", "label", "created", "revoked")))
    Console().print(table)


@tokens.command("revoke")
@click.argument("token_id")
@friendly
def tokens_revoke(token_id: str) -> None:
    from ledger.store.tokens import TokenStore

    if not TokenStore(_ledger().db).revoke(token_id):
        raise CliError(f"no token {token_id}")
    click.echo(f"revoked {token_id}")


# --- subjects --------------------------------------------------------------


@main.group()
def subjects() -> None:
    """Personal data: erase a person (GDPR)."""


@subjects.command("erase")
@click.argument("subject")
@click.option(
    "--reason",
    default=DEFAULT_REASON,
    show_default=True,
    help=f"GDPR ground, recorded as this code (never free text): {', '.join(REASON_CODES)}.",
)
@friendly
def subjects_erase(subject: str, reason: str) -> None:
    """Delete SUBJECT's data key: their data becomes unreadable, the audit still passes."""
    from ledger.domain.referential import load_referential
    from ledger.services.candidates import CandidateService

    seq = CandidateService(_ledger(), load_referential()).erase(subject, reason)
    click.echo(f"erased {subject} (seq {seq}): {REASONS[reason]['en']}")


@main.group("external-ids")
def external_ids() -> None:
    """The national-id (INE) index, kept outside the log so that erasure can delete it."""


@external_ids.command("rebuild")
@friendly
def external_ids_rebuild() -> None:
    """Add the index rows the log's verified registrations call for; report conflicts."""
    _echo_rebuilt(_ledger())


def _echo_rebuilt(ledger: Any) -> None:
    from ledger.services.external_id_index import rebuild

    done = rebuild(ledger)
    click.echo(
        f"external-id index: {done.inserted} added, {done.present} already there,"
        f" {done.erased} erased skipped, {len(done.unverified)} unverified skipped,"
        f" {len(done.conflicts)} conflicts"
    )
    for candidate, holder in done.conflicts:
        click.echo(f"  conflict: candidate {candidate} has the external id of candidate {holder}")
    for seq in done.unverified:
        click.echo(f"  unverified registration at seq {seq}: run `ledger audit verify`")


# --- projections -------------------------------------------------------------


def _projections_for(config: Config) -> list[Any]:
    from ledger.domain.referential import load_referential
    from ledger.projections import all_projections

    return all_projections(config, load_referential())


def _create_projection_tables(ledger: Any) -> list[Any]:
    from ledger.projections.runner import create_tables

    projections = _projections_for(ledger.config)
    create_tables(ledger.db, projections)
    return projections


@main.group()
def projections() -> None:
    """Read models: follow the log, rebuild from it, show positions."""


@projections.command("run")
@click.option("--once", is_flag=True, help="Catch up to the head, then exit.")
@click.option(
    "--batch", type=click.IntRange(min=1), default=None,
    help="Events per transaction (LEDGER_PROJECTION_BATCH).",
)  # fmt: skip
@click.option("--parent", type=int, default=None, hidden=True)  # set by `ledger serve`
@friendly
def projections_run(once: bool, batch: int | None, parent: int | None) -> None:
    """Apply new events to the read models as they are appended, until SIGTERM."""
    import signal

    from ledger import logs
    from ledger.config import setting
    from ledger.projections.follow import Follower

    ledger = _ledger()
    config = ledger.config
    logs.configure(setting("LEDGER_LOG_LEVEL"), config.log_format)  # as the API's lines
    follower = Follower(
        ledger.db,
        _create_projection_tables(ledger),
        page=batch or config.projection_batch,
        poll_s=config.projection_poll_ms / 1000,
        parent=parent,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: follower.stop.set())
    try:
        reached = follower.run(once=once)
    finally:
        ledger.close()
    if once:
        click.echo(f"read models at seq {reached}")


@projections.command("rebuild")
@friendly
def projections_rebuild() -> None:
    """Replay the whole log into fresh read models; swap them in only if all succeed."""
    from ledger.projections.runner import head, rebuild

    ledger = _ledger()
    projs = _create_projection_tables(ledger)
    rebuild(ledger.db, projs)
    click.echo(f"rebuilt {', '.join(p.name for p in projs)} up to seq {head(ledger.db)}")


@projections.command("status")
@friendly
def projections_status() -> None:
    """Each read model's position against the head, its stall if any, and the lag."""
    from ledger.projections.lag import projection_lag
    from ledger.projections.runner import stalls

    ledger = _ledger()
    projs = _create_projection_tables(ledger)
    lag = projection_lag(ledger.db, projs)
    stalled = stalls(ledger.db) if lag["stalled"] else {}
    for p in projs:
        line = f"{p.name}: {lag['positions'][p.name]} / {lag['head']}"
        if p.name in stalled:
            line += f" (stalled at seq {stalled[p.name]['seq']}: {stalled[p.name]['error']})"
        click.echo(line)
    click.echo(f"lag: {lag['events']} events, {lag['seconds']} s")


@main.group()
def webhooks() -> None:
    """Webhooks to schools: queue and send them (each serving process also does it)."""


@webhooks.command("send")
@friendly
def webhooks_send() -> None:
    """Queue new certificate events and send the due deliveries once (for cron)."""
    from ledger.services.webhooks import Webhooks

    ledger = _ledger()
    projs = _create_projection_tables(ledger)
    stalled = _fresh_read_models(ledger, projs)
    alarms: list[dict[str, Any]] = []
    counts = Webhooks(ledger, alarm=alarms.append).dispatch()
    click.echo(
        f"queued {counts['queued']}, delivered {counts['delivered']}, failed {counts['failed']}"
    )
    if alarms:
        raise CliError("; ".join(str(p) for a in alarms for p in a["problems"]))
    if stalled:
        raise CliError(
            f"read models stalled ({', '.join(sorted(stalled))}): run projections status"
        )


def _fresh_read_models(ledger: Any, projs: list[Any]) -> set[str]:
    """Catch the read models up here (inline), or wait for the runner; the stalled ones."""
    from ledger.projections.lag import wait_for
    from ledger.projections.runner import catch_up, head, stalls

    if ledger.config.projections == "inline":
        return catch_up(ledger.db, projs)
    wait_for(ledger.db, projs, head(ledger.db), ledger.config.read_max_wait_ms / 1000)
    return set(stalls(ledger.db))


# --- export and audit --------------------------------------------------------


@main.command("export")
@click.argument("out", type=click.Path(path_type=Path))
@friendly
def export(out: Path) -> None:
    """Write an offline audit bundle: events.ndjson, jwks.json, checkpoint.txt."""
    from ledger.audit.export import export_bundle

    count = export_bundle(_ledger(), out)
    click.echo(f"exported {count} events to {out}")


@main.command("backup")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="A new file.")
@friendly
def backup(out: Path) -> None:
    """Write a consistent snapshot of the log, its evidence, the vault and tokens (gzip)."""
    from ledger.store.backup import backup as write_backup

    ledger = _ledger()
    try:
        summary = write_backup(ledger.db, out)
    finally:
        ledger.close()
    click.echo(
        f"backed up {summary.rows['ledger_events']} events (head seq {summary.head}) to {out}"
    )


@main.command("restore")
@click.argument("source", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--into", "into_url", required=True, help="An empty database URL.")
@click.option(
    "--erasures-from",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="events.ndjson of a later export: re-apply the erasures it logs.",
)
@friendly
def restore(source: Path, into_url: str, erasures_from: Path | None) -> None:
    """Load a backup into an empty database, keep erasures erased, rebuild the read models."""
    from ledger.projections.runner import catch_up, create_tables
    from ledger.store.backup import erased_subjects
    from ledger.store.backup import restore as load_backup
    from ledger.store.db import connect

    later: list[str] = []
    if erasures_from is not None:  # read first: a bad file must not stop us half-way
        with erasures_from.open(encoding="utf-8") as events:
            later = erased_subjects(events)
    config = replace(_config(), database_url=into_url)
    target = connect(into_url, config.db_timeouts)
    try:
        summary = load_backup(source, target)
        erased = _reapply_erasures(target, config, later)
        projections = _projections_for(config)
        create_tables(target, projections)
        catch_up(target, projections)
    finally:
        target.close()
    click.echo(
        f"restored {summary.rows['ledger_events']} events (head seq {summary.head}),"
        f" {erased} erasures re-applied, read models rebuilt;"
        " prove it with `ledger audit verify` on the restored database"
    )


def _reapply_erasures(db: Any, config: Config, later: list[str]) -> int:
    """Erase every subject the restored log, or a later one, says was erased; count new ones."""
    from ledger.keys import KeyRing
    from ledger.store.backup import logged_erasures
    from ledger.store.subjects import SubjectVault

    vault = SubjectVault(db, KeyRing(config.keys_dir, config.master_key))
    subjects = dict.fromkeys([*logged_erasures(db), *later])
    return sum(vault.erase(subject) == "erased" for subject in subjects)


@main.command("checkpoint")
@friendly
def checkpoint() -> None:
    """Sign a checkpoint if one is due and push it to the witnesses (for cron)."""
    from ledger.domain import clock
    from ledger.services.checkpoints import Checkpointer, checkpoint_status

    ledger = _ledger()
    alarms: list[dict[str, Any]] = []
    signer = Checkpointer(ledger, alarm=alarms.append)
    try:
        signed = signer.tick()
    finally:
        signer.close()
    if alarms:
        raise CliError("; ".join(str(p) for a in alarms for p in a["problems"]))
    status = checkpoint_status(ledger, signer.tree.refresh(), clock.now())
    cosigned = f"cosigned by {len(status.get('cosigners', []))} of quorum {signer.quorum}"
    if signed is None:
        click.echo(f"nothing due: latest checkpoint {status.get('size')}, {cosigned}")
    else:
        click.echo(f"signed checkpoint {signed}, {cosigned}")


def _progress() -> Progress:
    return Progress(
        TextColumn("verifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@main.group()
def audit() -> None:
    """Verify hashes, signatures, the chain and checkpoints."""


@audit.command("verify")
@click.argument("bundle", required=False, type=click.Path(path_type=Path))
@click.option(
    "--trust-anchor",
    "anchor_text",
    default=None,
    help="The log's trust anchor, obtained out of band (the line `ledger init` printed, or a file).",
)
@click.option(
    "--since-checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="A checkpoint saved by an earlier audit: fail if the log no longer extends it.",
)
@click.option(
    "--save-checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="After a successful audit, save the verified checkpoint here for the next one.",
)
@click.option(
    "--witness",
    "witness_keys",
    multiple=True,
    help="A trusted witness's verifier key (repeatable): the checkpoint must carry its cosignature.",
)
@click.option(
    "--quorum",
    type=click.IntRange(min=0),
    default=None,
    help="How many of the --witness keys must have cosigned (default: all).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Processes verifying signatures (0: every core; 1: sequential).",
)
@click.option(
    "--skip-tiles",
    is_flag=True,
    help="Live audit: do not compare the stored tiles with the events (quicker).",
)
@friendly
def audit_verify(
    bundle: Path | None,
    anchor_text: str | None,
    since_checkpoint: Path | None,
    save_checkpoint: Path | None,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    workers: int,
    skip_tiles: bool,
) -> None:
    """Verify the live store, or the export BUNDLE; exit 1 naming the first bad seq.

    The live store's tiles and every stored checkpoint are checked against the
    events too (--skip-tiles leaves the tiles out); a bundle has neither.
    """
    from ledger.audit.parallel import default_workers
    from ledger.audit.verify import verify_bundle

    if bundle is not None and not bundle.is_dir():
        raise CliError(f"{bundle} is not a bundle directory")
    witnesses, needed = _witnesses(witness_keys, quorum)
    workers = workers or default_workers()
    since = since_checkpoint.read_text(encoding="utf-8") if since_checkpoint else None
    ledger = _ledger() if bundle is None else None
    anchor, source = _audit_anchor(anchor_text, ledger)
    with _progress() as progress:
        if bundle is not None:
            events = bundle / "events.ndjson"
            total = _count_lines(events) if events.is_file() else 0
            task = progress.add_task("verify", total=total)
            report = verify_bundle(
                bundle, anchor, since, lambda n: progress.advance(task, n), workers
            )
        else:
            report = _audit_live(ledger, anchor, since, progress, workers, skip_tiles, bool(needed))
            _record_audit(ledger, report)
    if not report.ok:
        where = f"seq {report.first_bad_seq}: " if report.first_bad_seq else ""
        click.echo(f"FAILED at {where}{report.problem}", err=True)
        sys.exit(EXIT_FAILURE)
    if witnesses:
        _require_quorum(report.checkpoint_note, witnesses, needed)
    if report.anchor_from_log:
        click.echo(
            "warning: no trust anchor given (--trust-anchor or LEDGER_TRUST_ANCHOR): this audit "
            "trusts the database's own first key and is weaker; a history rewritten from its "
            "first event would pass",
            err=True,
        )
    if save_checkpoint is not None:
        if report.checkpoint_note is None:
            raise CliError("no verified checkpoint to save (the bundle has no checkpoint.txt)")
        save_checkpoint.write_text(report.checkpoint_note, encoding="utf-8")
    click.echo(_audit_summary(report, source))


@audit.command("replay")
@click.option(
    "--until", "until_text", required=True, help="A seq, or a time YYYY-MM-DDTHH:MM:SS.ffffffZ."
)
@click.option("--into", "into_url", required=True, help="An empty scratch database URL.")
@click.option(
    "--bundle",
    type=click.Path(path_type=Path),
    default=None,
    help="Replay an export, not the live store.",
)
@click.option("--trust-anchor", "anchor_text", default=None, help="The log's trust anchor.")
@friendly
def audit_replay(
    until_text: str, into_url: str, bundle: Path | None, anchor_text: str | None
) -> None:
    """Rebuild the read models as they stood at a seq or time, into a scratch database."""
    from ledger.audit.replay import Until
    from ledger.audit.verify import AuditReport
    from ledger.store.db import connect

    until = Until.parse(until_text)
    config = _config()
    if bundle is None and _same_database(into_url, config.database_url):
        raise CliError("--into is the live database; give an empty scratch database")
    records, anchor, source = _replay_source(bundle, anchor_text)
    scratch = connect(into_url, config.db_timeouts)
    try:
        report = AuditReport(anchor_from_log=anchor is None)
        reached, counts = _replay(scratch, config, records, anchor, until, report)
    finally:
        scratch.close()
    tables = ", ".join(f"{table} {count}" for table, count in counts.items())
    if not report.ok:
        click.echo(
            f"FAILED at seq {report.first_bad_seq}: {report.problem}; the scratch database "
            f"holds the read models up to seq {reached} ({tables})",
            err=True,
        )
        sys.exit(EXIT_FAILURE)
    if anchor is None:
        click.echo("warning: no trust anchor given: keys were taken from the log itself", err=True)
    click.echo(f"replayed {reached} verified events (keys endorsed from {source}): {tables}")


def _same_database(a: str, b: str) -> bool:
    """The same SQLite file or the same PostgreSQL URL."""
    prefix = "sqlite:///"
    if a.startswith(prefix) and b.startswith(prefix):
        return Path(a[len(prefix) :]).resolve() == Path(b[len(prefix) :]).resolve()
    return a.strip() == b.strip()


def _replay_source(bundle: Path | None, anchor_text: str | None) -> tuple[Any, Any, str]:
    """(records, anchor, where the anchor came from) of the live store or a bundle."""
    from ledger.audit.export import live_records
    from ledger.audit.verify import read_ndjson
    from ledger.trust import Anchor

    if bundle is None:
        ledger = _ledger()
        anchor, source = _audit_anchor(anchor_text, ledger)
        return live_records(ledger), anchor, source
    if not anchor_text:
        raise CliError("--bundle needs --trust-anchor: the bundle cannot vouch for its keys")
    events = bundle / "events.ndjson"
    if not events.is_file():
        raise CliError(f"{bundle} is not a bundle directory")
    return read_ndjson(events), Anchor.load(anchor_text), "--trust-anchor"


def _replay(
    scratch: Any, config: Config, records: Any, anchor: Any, until: Any, report: Any
) -> tuple[int, dict[str, int]]:
    from ledger.audit.replay import verified_envelopes
    from ledger.projections.replay import prepare_scratch, replay_into, table_counts

    projections = _projections_for(config)
    prepare_scratch(scratch, projections)
    reached = replay_into(scratch, projections, verified_envelopes(records, anchor, until, report))
    return reached, table_counts(scratch, projections)


def _qr_keys(bundle: Path | None, anchor_text: str | None, jwks_file: Path | None) -> Any:
    """The JWKS to check a QR token with: endorsed from the anchor, or one given as trusted."""
    if bundle is not None:
        return _bundle_history(bundle, anchor_text).jwks()
    if jwks_file is None:
        raise CliError("give --bundle with --trust-anchor, or --jwks")
    try:
        return json.loads(jwks_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"cannot read JWKS {jwks_file}: {exc}") from exc


def _bundle_history(bundle: Path, anchor_text: str | None) -> Any:
    """The keys an export's events endorse from the anchor (the bundle never vouches)."""
    from ledger.audit.verify import read_ndjson
    from ledger.trust import Anchor, KeyHistory

    if not anchor_text:
        raise CliError("--bundle needs --trust-anchor: the bundle cannot vouch for its keys")
    events = bundle / "events.ndjson"
    if not events.is_file():
        raise CliError(f"{bundle} is not a bundle directory")
    history = KeyHistory.fold(read_ndjson(events), Anchor.load(anchor_text))
    if history.rejected:
        seq, why = history.rejected[0]
        raise CliError(f"the bundle's key chain breaks at seq {seq}: {why}")
    return history


def _audit_anchor(text: str | None, ledger: Any) -> tuple[Any, str]:
    """The anchor to audit against, and where it came from; (None, ...) when there is none."""
    from ledger.trust import Anchor, configured_anchor

    if text:
        return Anchor.load(text), "--trust-anchor"
    config = ledger.config if ledger is not None else _config()
    found = configured_anchor(config.trust_anchor, config.keys_dir)
    return found if found is not None else (None, "the log's own first key")


def _count_lines(path: Path) -> int:
    """Non-blank lines, for the progress bar: counted, not parsed (the audit parses once)."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _witnesses(texts: tuple[str, ...], quorum: int | None) -> tuple[list[Any], int]:
    from ledger.audit.checkpoint import CheckpointError
    from ledger.audit.quorum import parse_witnesses

    if quorum is not None and not texts:
        raise CliError("--quorum needs --witness keys")
    try:
        return parse_witnesses(texts, quorum)
    except CheckpointError as exc:
        raise CliError(str(exc)) from exc


def _require_quorum(note: str | None, witnesses: list[Any], needed: int) -> None:
    """Exit 1 unless the verified checkpoint carries the witness quorum."""
    from ledger.audit.quorum import quorum_problem

    if note is None:
        click.echo("FAILED: no verified checkpoint to check witness cosignatures on", err=True)
        sys.exit(EXIT_FAILURE)
    problem = quorum_problem(note, witnesses, needed)
    if problem:
        click.echo(f"FAILED: {problem}", err=True)
        sys.exit(EXIT_FAILURE)


def _record_audit(ledger: Any, report: Any) -> None:
    """Keep the live audit's outcome in the store: `/metrics` shows the latest to monitoring."""
    from ledger.store import audit_runs
    from ledger.store.db import StoreError

    where = f"seq {report.first_bad_seq}: " if report.first_bad_seq else ""
    problem = f"{where}{report.problem}" if not report.ok else None
    try:
        audit_runs.record(ledger.db, report.ok, report.events, problem)
    except StoreError as exc:  # e.g. an auditor's read-only role: the audit itself stands
        click.echo(f"warning: the audit's outcome was not recorded: {exc}", err=True)


def _audit_live(
    ledger: Any,
    anchor: Any,
    since: str | None,
    progress: Progress,
    workers: int,
    skip_tiles: bool = False,
    witnessed: bool = False,
) -> Any:
    """Audit the live store: its events, latest checkpoint, stored checkpoints and tiles."""
    from ledger.audit.export import live_records
    from ledger.audit.verify import AuditReport, verify_records
    from ledger.projections.runner import head
    from ledger.store.db import StoreError

    note = _live_note(ledger, witnessed)  # first: the events read next always cover it
    try:  # before the head too: the tiles never cover more than the events read next
        stored = _stored_evidence(ledger, anchor, skip_tiles)
    except StoreError as exc:
        return AuditReport().fail(None, str(exc))
    size = head(ledger.db)
    task = progress.add_task("verify", total=size)
    return verify_records(
        live_records(ledger, upto=size),
        anchor,
        note,
        since,
        lambda n: progress.advance(task, n),
        workers,
        stored,
    )


def _stored_evidence(ledger: Any, anchor: Any, skip_tiles: bool) -> Any:
    """The stored checkpoints (streamed) and tiles the live audit checks against the events."""
    from ledger.audit.tiles import TileError
    from ledger.audit.verify import StoredEvidence
    from ledger.store.db import StoreError
    from ledger.store.tiles import TileStore

    tiles = None if skip_tiles else TileStore(ledger.db)
    try:
        tree_size = tiles.size() if tiles is not None else 0
    except TileError as exc:
        raise StoreError(str(exc)) from exc
    origin = anchor.origin if anchor is not None else ledger.config.log_origin
    return StoredEvidence(_stored_checkpoints(ledger), tiles, tree_size, origin)


def _stored_checkpoints(ledger: Any) -> Iterator[Any]:
    """Every stored checkpoint in size order; a row the store refuses is a checkpoint error."""
    from ledger.audit.checkpoint import CheckpointError
    from ledger.store.checkpoints import CheckpointStore
    from ledger.store.db import StoreError

    try:
        yield from CheckpointStore(ledger.db).each()
    except StoreError as exc:
        raise CheckpointError(str(exc)) from exc


def _live_note(ledger: Any, witnessed: bool = False) -> str | None:
    """The latest stored checkpoint with its cosignatures (the first one signed now); None if empty.

    With a witness quorum required, the latest one that has the log's configured quorum
    instead: the newest is served before its witnesses cosign, and a witness lagging
    is not the log misbehaving.
    """
    from ledger.projections.runner import head
    from ledger.services import checkpoints

    if not head(ledger.db):
        return None
    if witnessed:
        found = checkpoints.witnessed(ledger)
        if found is not None:
            return found.note
    return checkpoints.latest_note(ledger)


def _audit_summary(report: Any, source: str) -> str:
    text = (
        f"OK: {report.events} events, chain intact, all signatures valid "
        f"({len(report.keys_used)} key(s), endorsed from anchor {report.anchor_kid} "
        f"[{source}]), root {report.root.hex()[:16]}…"
    )
    if report.checkpoint_size:
        text += f", checkpoint at size {report.checkpoint_size} verified"
    if report.stored_checkpoints is not None:
        text += f", {report.stored_checkpoints} stored checkpoint(s) match the events"
    if report.since_size is not None:
        text += f", extends the saved checkpoint of size {report.since_size}"
    for fingerprint, seq in report.attestation_cas.items():
        text += f", attestation CA {fingerprint[:16]}… logged at seq {seq}"
    return text


@audit.command("watch")
@click.argument("url")
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory where the monitor keeps what it saw (created on the first run).",
)
@click.option(
    "--trust-anchor",
    "anchor_text",
    default=None,
    help="The log's trust anchor (needed on the first run; then it must match the state's).",
)
@click.option(
    "--token",
    envvar="LEDGER_MONITOR_TOKEN",
    default=None,
    help="An audit:read token of the log (or LEDGER_MONITOR_TOKEN).",
)
@click.option("--witness", "witness_keys", multiple=True, help="A trusted witness's verifier key.")
@click.option("--quorum", type=click.IntRange(min=0), default=None, help="Witnesses needed.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="Seconds the whole run may take (every read of the log ends by then; exit 2 if not).",
)
@click.option("-v", "--verbose", is_flag=True, help="Say what is checked, on stderr.")
def audit_watch(
    url: str,
    state_dir: Path,
    anchor_text: str | None,
    token: str | None,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    timeout: float,
    verbose: bool,
) -> None:
    """Follow the log at URL: exit 0 if it kept its word, 1 with ALARM if not, 2 if unreachable."""
    from ledger.audit.log_client import LogClient, LogClientError
    from ledger.audit.monitor import Alarm, follow
    from ledger.audit.monitor_state import StateError, save
    from ledger.audit.parallel import default_workers

    say = (lambda text: click.echo(text, err=True)) if verbose else None
    try:
        witnesses, needed = _witnesses(witness_keys, quorum)
        with _watch_lock(state_dir):
            state = _watch_state(state_dir, anchor_text)
            client = LogClient(url, token, timeout)
            outcome = follow(client, state, witnesses, needed, say, default_workers())
            save(state_dir, state)
    except Alarm as alarm:
        _keep_evidence(state_dir, alarm)
        click.echo(f"ALARM: {alarm}", err=True)
        sys.exit(EXIT_FAILURE)
    except (LogClientError, StateError, CliError, *_known_errors()) as exc:
        message = exc.message if isinstance(exc, CliError) else str(exc)
        click.echo(f"error: {message.splitlines()[0] if message else type(exc).__name__}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(_watch_summary(url, outcome))


def _watch_summary(url: str, outcome: Any) -> str:
    """The one line a successful run prints (cron mails it)."""
    if outcome.waiting and outcome.size == outcome.old_size:
        return (
            f"OK: {url} waiting for witnesses: no checkpoint after size {outcome.size} carries "
            f"the witness quorum yet (the log's latest is of size {outcome.waiting})"
        )
    added = outcome.size - outcome.old_size
    text = (
        f"OK: {url} size {outcome.size} (+{added} events verified), root {outcome.root.hex()[:16]}…"
    )
    if outcome.old_size:
        text += f", consistent with size {outcome.old_size} seen before"
    if outcome.cosigners:
        text += f", cosigned by {', '.join(sorted(outcome.cosigners))}"
    if outcome.waiting:
        text += f"; waiting for witnesses to cosign the checkpoint of size {outcome.waiting}"
    return text


def _watch_state(directory: Path, anchor_text: str | None) -> Any:
    """The saved state, or a fresh one from the trust anchor on the first run."""
    from ledger.audit.monitor_state import MonitorState, load
    from ledger.trust import Anchor

    state = load(directory)
    anchor = Anchor.load(anchor_text) if anchor_text else None
    if state is None:
        if anchor is None:
            raise CliError("the first run needs --trust-anchor (the log's, obtained out of band)")
        return MonitorState(anchor)
    if anchor is not None and anchor != state.anchor:
        raise CliError(f"{directory} follows another log (anchor {state.anchor.to_string()[:40]}…)")
    return state


@contextmanager
def _watch_lock(directory: Path) -> Iterator[None]:
    """One run at a time per state directory, so overlapping cron runs cannot interleave."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CliError(f"another watch is running on {directory}") from None
        yield


def _keep_evidence(directory: Path, alarm: Any) -> None:
    """Append the alarm to DIR/alarms.log and keep the signed notes proving it next to it.

    Each note goes in `evidence-<time>-<kind>-<n>.txt`: the log's own signatures on
    what contradicts itself are what whoever investigates needs, and the log may
    stop serving them.
    """
    import re
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    kind = re.sub(r"[^a-z0-9]+", "-", alarm.kind.lower()).strip("-") or "alarm"
    try:
        with (directory / "alarms.log").open("a", encoding="utf-8") as handle:
            handle.write(f"{now.isoformat(timespec='seconds')} ALARM: {alarm}\n")
        for number, note in enumerate((n for n in alarm.notes if n), start=1):
            name = f"evidence-{stamp}-{kind}-{number}.txt"
            (directory / name).write_text(note, encoding="utf-8")
    except OSError:
        pass  # the alarm is still printed and the exit status still says it


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a token longer than a file name may be
        return False


@main.command("verify-qr")
@click.argument("source")
@click.option(
    "--bundle",
    type=click.Path(path_type=Path),
    default=None,
    help="An export: the keys are those its events endorse from --trust-anchor (preferred).",
)
@click.option(
    "--trust-anchor",
    "anchor_text",
    default=None,
    help="The log's trust anchor, obtained out of band (with --bundle).",
)
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Or a /.well-known/jwks.json you trust as it is (fetched over a channel you trust).",
)
@friendly
def verify_qr(
    source: str, bundle: Path | None, anchor_text: str | None, jwks_file: Path | None
) -> None:
    """Check a certificate QR code offline: SOURCE is an image, a PDF, a URL or a token."""
    from ledger.qr_image import ImageUnreadable, decode_qr
    from ledger.qr_token import TokenInvalid, parse_qr_url, verify_token

    text = source
    path = Path(source)
    if _is_file(path):
        try:
            found = decode_qr(path.read_bytes())
        except ImageUnreadable as exc:
            raise CliError(f"{path.name}: {exc}") from exc
        if not found:
            raise CliError(f"no QR code found in {path.name}")
        text = found[0]
    jwks = _qr_keys(bundle, anchor_text, jwks_file)
    try:
        token = parse_qr_url(text)[1] if "://" in text else text.strip()
        claims = verify_token(token, jwks)
    except TokenInvalid as exc:
        click.echo(f"INVALID ({exc.reason}): {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    payload = claims.to_payload()
    click.echo(f"VALID signature: certificate {payload['c']}")
    click.echo(f"  holder: {payload['fn']} {payload['ln']}, born {payload['bd']}")
    click.echo(f"  issued {payload['iat']}, valid until {payload['exp']}, {payload['p']} pix")
    click.echo(f"  levels (1.1 … 5.2, out of {payload['m']}): {' '.join(payload['l'])}")
    click.echo(f"  issuing event hash: {payload['h']}")
    click.echo("  offline check: a later cancellation or rescoring is only visible online")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"cannot read {what} {path}: {exc}") from exc


def _issuer_document(vc: Any, did_file: Path | None, jwks_file: Path | None) -> dict[str, Any]:
    """The DID document to trust: a saved did.json, or one made from a saved JWKS."""
    from ledger.crypto import public_key_from_jwk
    from ledger.vc.did import did_document

    if (did_file is None) == (jwks_file is None):
        raise CliError("give exactly one of --did (saved did.json) or --jwks (saved jwks.json)")
    if did_file is not None:
        return _read_json(did_file, "DID document")
    jwks = _read_json(jwks_file, "JWKS")  # type: ignore[arg-type]
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise CliError(f"{jwks_file} is not a JWKS")
    issuer = vc.get("issuer") if isinstance(vc, dict) else None
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    return did_document(str(issuer_id), [public_key_from_jwk(k) for k in keys])


@main.command("verify-credential")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--did", "did_file", type=click.Path(path_type=Path), help="Saved /.well-known/did.json."
)
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(path_type=Path),
    help="Saved jwks.json (e.g. an audit bundle's).",
)
@click.option(
    "--status", "status_file", type=click.Path(path_type=Path), help="Saved status list credential."
)
@friendly
def verify_credential(
    file: Path, did_file: Path | None, jwks_file: Path | None, status_file: Path | None
) -> None:
    """Check a verifiable credential offline: proof, issuer keys, validity dates, revocation."""
    from ledger.domain import clock
    from ledger.vc.credential import CredentialError, status_bit, validity_problem
    from ledger.vc.credential import verify_credential as check

    vc = _read_json(file, "credential")
    did_doc = _issuer_document(vc, did_file, jwks_file)
    try:
        checked = check(vc, did_doc)
        revoked = (
            status_bit(vc, _read_json(status_file, "status list"), did_doc) if status_file else None
        )
    except CredentialError as exc:
        click.echo(f"INVALID: {exc}", err=True)
        sys.exit(EXIT_FAILURE)
    dates = validity_problem(vc, clock.now())
    click.echo(f"VALID proof: {vc.get('name')}")
    click.echo(f"  issuer {checked['issuer']}, key {checked['verification_method'].split('#')[-1]}")
    click.echo(f"  valid from {vc.get('validFrom')} until {vc.get('validUntil')}")
    if revoked:
        click.echo("REVOKED: the status list has this credential's bit set", err=True)
    if dates:
        click.echo(f"NOT VALID NOW: {dates}", err=True)
    if revoked is None:
        click.echo("  revocation not checked: pass --status with the saved status list")
    if revoked or dates:
        sys.exit(EXIT_FAILURE)


@main.command("verify-pdf")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--bundle",
    type=click.Path(path_type=Path),
    default=None,
    help="An export: its CA and keys, accepted only as the anchor's chain endorses them.",
)
@click.option("--trust-anchor", "anchor_text", default=None, help="With --bundle.")
@click.option(
    "--ca",
    "ca_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Or a saved /.well-known/attestation-ca.pem you trust as it is.",
)
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With --ca: a saved /.well-known/jwks.json to check the QR code's token.",
)
@friendly
def verify_pdf(
    file: Path,
    bundle: Path | None,
    anchor_text: str | None,
    ca_file: Path | None,
    jwks_file: Path | None,
) -> None:
    """Check an attestation PDF offline: PAdES signature, chain to the CA, QR token."""
    from ledger.attestation.signing import validate

    pdf = _read_bytes(file, "PDF")
    if bundle is not None:
        history = _bundle_history(bundle, anchor_text)
        ca_pem, jwks = _logged_ca(bundle, history), history.jwks()
    elif ca_file is not None:
        ca_pem = _read_bytes(ca_file, "CA certificate")
        jwks = _qr_keys(None, None, jwks_file) if jwks_file else None
    else:
        raise CliError("give --bundle with --trust-anchor, or --ca")
    report = validate(pdf, ca_pem)
    if not report.ok:
        click.echo(f"INVALID ({file.name}): {report.reason}", err=True)
        sys.exit(EXIT_FAILURE)
    qr = _pdf_qr_claims(pdf, jwks) if jwks else None
    signer = report.signer.split(",")[0].removeprefix("Common Name: ")
    found = f", QR token of {qr['c']} verified (issuing hash {qr['h'][:16]}…)" if qr else ""
    click.echo(
        f"VALID ({file.name}): signature intact, signed by {signer} under the given CA{found}"
    )


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _logged_ca(bundle: Path, history: Any) -> bytes:
    """The bundle's attestation CA, if a CaPublished event signed through the chain logs it."""
    from ledger import crypto
    from ledger.attestation.ca import CA_PUBLISHED
    from ledger.audit.verify import read_ndjson

    ca_pem = _read_bytes(bundle / "attestation-ca.pem", "CA certificate")
    try:
        fingerprint = crypto.certificate_fingerprint(crypto.load_certificate(ca_pem))
    except crypto.CryptoError as exc:
        raise CliError(f"the bundle's attestation-ca.pem is unreadable: {exc}") from exc
    for record in read_ndjson(bundle / "events.ndjson"):
        data = record.get("data") or {}
        logs_it = record.get("type") == CA_PUBLISHED and data.get("fingerprint") == fingerprint
        if logs_it and history.verify_one(record):
            return ca_pem
    raise CliError("the bundle's attestation CA is not logged by a signed CaPublished event")


def _pdf_qr_claims(pdf: bytes, jwks: dict[str, Any]) -> dict[str, Any]:
    """The verified claims of the QR code printed on the PDF's first page."""
    from ledger.services.attestation_check import read_qr

    finding, found = read_qr(pdf, jwks, None)
    if found is None:
        click.echo(f"INVALID QR code ({finding.reason}): {finding.detail}", err=True)
        sys.exit(EXIT_FAILURE)
    return found[2]


# --- demo and serve ------------------------------------------------------------


# --- rescoring ---------------------------------------------------------------


@main.command()
@click.option(
    "--all-outdated", is_flag=True, help="Every course last scored under older scoring rules."
)
@click.option("--dry-run", is_flag=True, help="Compute and report; record nothing.")
@click.option(
    "--reason",
    default="scoring rules change",
    show_default=True,
    help="Why, recorded sealed under each candidate's subject.",
)
@friendly
def rescore(all_outdated: bool, dry_run: bool, reason: str) -> None:
    """Rescore courses under the current scoring rules; their certificates follow."""
    from ledger.domain.referential import load_referential
    from ledger.domain.scoring import RULES_VERSION
    from ledger.services.certification import CertificationService

    if not all_outdated:
        raise click.UsageError("say which courses: --all-outdated")
    ledger = _ledger()
    try:
        service = CertificationService(ledger, load_referential(), ledger.config)
        answers = service.rescore_outdated(reason, dry_run=dry_run)
    finally:
        ledger.close()
    click.echo(_rescore_summary(answers, RULES_VERSION, dry_run))


def _rescore_summary(answers: list[dict[str, Any]], rules: str, dry_run: bool) -> str:
    """One line: how many courses, what happened to their certificates, which were refused."""
    done = [a for a in answers if a["rescored"]]
    failed = [a for a in answers if "error" in a]
    actions = [a["certificate_action"] for a in done]
    verb = "would rescore" if dry_run else "rescored"
    counts = ", ".join(
        f"{actions.count(action)} {label}"
        for action, label in (
            ("rescored", "certificate(s) rescored"), ("cancelled", "cancelled"),
            ("issued", "issued"), ("needs-review", "need review (error)"),
            ("unchanged", "unchanged"),
        )
    )  # fmt: skip
    line = (
        f"{verb} {len(done)} course(s) under scoring rules {rules}: {counts};"
        f" {len(answers) - len(done) - len(failed)} already up to date"
    )
    if failed:
        line += f"; {len(failed)} refused, first: {failed[0]['course']}: {failed[0]['error']}"
    return line


# --- witness ---------------------------------------------------------------


@main.group()
def witness() -> None:
    """A C2SP tlog-witness an independent organisation runs: init, serve, status."""


@witness.command("init")
@click.option("--dir", "directory", required=True, type=Path, help="Witness directory.")
@click.option("--name", required=True, help="Witness name, e.g. witness.example.org/w1.")
@friendly
def witness_init(directory: Path, name: str) -> None:
    """Create the witness key (DIR/witness.key, 0600) and state; print its vkey."""
    from ledger.witness import identity

    vkey = identity.init(directory, name)
    console.print(f"witness key in {directory}; give this vkey to the log operators:")
    click.echo(str(vkey))


@witness.command("serve")
@click.option("--dir", "directory", required=True, type=Path, help="Witness directory.")
@click.option(
    "--log", "logs", multiple=True, required=True, help="A log vkey (`ledger keys anchor`)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--port", default=8430, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@friendly
def witness_serve(
    directory: Path, logs: tuple[str, ...], host: str, port: int, workers: int
) -> None:
    """Serve POST /add-checkpoint, cosigning checkpoints of the given logs."""
    from ledger.witness.server import run

    run(directory, logs, host, port, workers)


@witness.command("status")
@click.option("--dir", "directory", required=True, type=Path, help="Witness directory.")
@friendly
def witness_status(directory: Path) -> None:
    """The witness vkey, each log's latest cosigned size, and the evidence kept."""
    from datetime import UTC, datetime

    from ledger.crypto import b64
    from ledger.witness import identity

    vkey, _ = identity.load(directory)
    state = identity.state(directory)
    click.echo(f"witness {vkey}")
    for row in state.origins():
        when = datetime.fromtimestamp(row.updated_at, UTC).isoformat()
        click.echo(f"{row.origin} size {row.size} root {b64(row.root)} at {when}")
    for received, origin, status, reason, _ in state.evidence():
        when = datetime.fromtimestamp(received, UTC).isoformat()
        click.echo(f"EVIDENCE {when} {origin}: {status} {reason}")


@main.command()
@click.option("--candidates", default=300, show_default=True, help="How many candidates.")
@click.option(
    "--seed", default=2026, show_default=True, help="Random seed (same seed, same history)."
)
@click.option("--if-empty", is_flag=True, help="Do nothing when the log already holds events.")
@friendly
def demo(candidates: int, seed: int, if_empty: bool) -> None:
    """Append a realistic demo history through the API's own code paths."""
    from ledger.demo import run_demo
    from ledger.projections.runner import head

    ledger = _ledger()
    events = head(ledger.db)
    ledger.close()
    if if_empty and events > 0:
        click.echo(f"demo skipped: the log already holds {events} events")
        return
    summary = run_demo(_config(), candidates=candidates, seed=seed, echo=console.print)
    click.echo(json.dumps(summary, indent=2))


@main.command()
@click.option("--host", default=None, help="Bind address (LEDGER_HOST).")
@click.option("--port", default=None, type=int, help="Port (LEDGER_PORT).")
@click.option("--workers", default=None, type=int, help="Gunicorn workers (LEDGER_WORKERS).")
@friendly
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the API and verify site under gunicorn."""
    from ledger.api.limits import RateLimits
    from ledger.audit.checkpoints import quorum
    from ledger.config import setting
    from ledger.projections.runner import catch_up
    from ledger.server import ProjectionRunner, run

    ledger = _ledger()  # refuses a missing ledger: `ledger init` creates it
    ledger.check_trust()
    quorum(ledger.config)  # a bad witness list fails here, not in every worker
    RateLimits(ledger.config).close()  # a bad limit or store fails here, not in every worker
    projs = _create_projection_tables(ledger)
    inline = ledger.config.projections == "inline"
    if inline:
        catch_up(ledger.db, projs)  # workers start with fresh read models
    ledger.close()
    runner = None if inline else ProjectionRunner().start()  # the read models' only writer
    try:
        run(
            host or setting("LEDGER_HOST"),
            port or int(setting("LEDGER_PORT")),
            workers or int(setting("LEDGER_WORKERS")),
            ledger.config.runtime_dir,
            ledger.config.log_format,
            ledger.config.serve_threads,
        )
    finally:
        if runner is not None:
            runner.stop()


if __name__ == "__main__":
    main()
