"""`ivr intents`: validate the catalogues, try a phrase, evaluate the matcher."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ivr.domain.model import LANGUAGES, Language

if TYPE_CHECKING:
    from ivr.nlu.embedder import Embedder


@click.group()
def intents() -> None:
    """Intent catalogues and the intent matcher."""


@intents.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("grammars"), show_default=True, help="catalogue directory")
def check(directory: Path) -> None:
    """Validate grammars/<lang>.yaml and print a summary."""
    from ivr.nlu.catalogue import CatalogueError, load_catalogue

    try:
        cat = load_catalogue(directory)
    except CatalogueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{len(cat.intents)} intents, languages: {', '.join(cat.languages)}")
    for lang in cat.languages:
        click.echo(f"  {lang}: {len(cat.examples(lang))} examples, "
                   f"{len(cat.phrases(lang))} distinct words")
    click.echo("keypad menu:")
    for spec in cat.keypad_menu():
        click.echo(f"  {spec.keypad}  {spec.name:<24} {spec.label_for('en')}")
    click.echo(f"{'intent':<24} {'scen':<4} {'skill':<12} {'target':<26} sensitive")
    for spec in cat.specs():
        target = spec.answer_ref or spec.link_key or "-"
        click.echo(f"{spec.name:<24} {spec.scenario.value:<4} {spec.skill:<12} {target:<26} "
                   f"{'yes' if spec.sensitive else ''}")
    _check_scripts(directory, cat)


def _check_scripts(directory: Path, cat: Any) -> None:
    """grammars/troubleshooting.yaml, checked as the node checks it at start-up."""
    from ivr.domain.troubleshoot import ScriptError
    from ivr.nlu.troubleshooting import load_scripts

    try:
        book = load_scripts(directory, is_intent=lambda name: cat.spec(name) is not None)
    except ScriptError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for script in book.scripts.values():
        click.echo(f"troubleshooting {script.name}: {len(script.steps)} steps, intents "
                   f"{', '.join(script.intents) or '-'}")


@intents.command()
@click.pass_context
def train(ctx: click.Context) -> None:
    """Fit the node's intent models now and store them in IVR_NLU_CACHE_DIR, so the
    next node start-up loads them (seconds) instead of fitting (25-45 s)."""
    import logging
    import time

    from ivr.app import build_understanding
    from ivr.cli.common import settings_from

    settings = settings_from(ctx)
    languages = [lang for lang in LANGUAGES if lang in settings.languages]
    click.echo(f"intent models for {', '.join(languages)} into {settings.embedding_cache} "
               "(each language fits in 10-30 s unless it is already stored)")

    class Progress(logging.Handler):  # the matcher logs one line per language
        def emit(self, record: logging.LogRecord) -> None:
            click.echo(f"  {record.getMessage()}")

    progress = Progress(logging.INFO)
    matcher_log = logging.getLogger("ivr.nlu.matcher")
    matcher_log.addHandler(progress)
    before = matcher_log.propagate, matcher_log.level
    matcher_log.propagate = False
    matcher_log.setLevel(logging.INFO)
    t0 = time.perf_counter()
    try:
        build_understanding(settings)
    finally:
        matcher_log.removeHandler(progress)
        matcher_log.propagate, _ = before
        matcher_log.setLevel(before[1])
    click.echo(f"done in {time.perf_counter() - t0:.1f} s")


@intents.command()
@click.argument("text")
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("grammars"), show_default=True)
@click.option("--no-embed", is_flag=True, help="TF-IDF + fuzzy only (no sentence embeddings)")
def match(text: str, lang: Language, directory: Path, no_embed: bool) -> None:
    """Match TEXT against the catalogue and print ranked intents."""
    from ivr.nlu.catalogue import CatalogueError, load_catalogue
    from ivr.nlu.matcher import HybridIntentMatcher, default_matcher

    try:
        cat = load_catalogue(directory)
    except CatalogueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    matcher = HybridIntentMatcher.from_catalogue(cat) if no_embed else default_matcher(cat)
    result = matcher.predict(text, lang)
    click.echo("out of scope" if result.out_of_scope else "in scope")
    for s in result.ranked:
        click.echo(f"  {s.confidence:.3f}  {s.intent}")


@intents.command("eval")
@click.option("--train", "train_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--test", "test_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="held-out file; without it, cross-validate on --train")
@click.option("--train-split", default="", help="JSON splits for training, comma-separated")
@click.option("--test-split", default="", help="JSON splits for testing, comma-separated")
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True,
              help="cross-validation folds when no --test is given")
@click.option("--text-column", default=None, help="CSV text column (default: auto)")
@click.option("--label-column", default=None, help="CSV label column (default: auto)")
@click.option("--oos-threshold", type=click.FloatRange(0, 1), default=None,
              help="confidence below which a text is out of scope")
@click.option("--oos-label", default=None,
              help="a data set's own out-of-scope label (e.g. HINT3's NO_NODES_DETECTED), "
                   "read as 'oos'")
@click.option("--calibrate", is_flag=True,
              help="choose the rejection point from the --train rows alone (leave-intents-"
                   "out: ivr.nlu.operating_point); needs --test")
@click.option("--no-embed", is_flag=True, help="TF-IDF + fuzzy only (no sentence embeddings)")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="use only the first N test examples (quick runs)")
@click.option("--json", "as_json", is_flag=True, help="print figures as JSON")
def eval_cmd(train_path: Path, test_path: Path | None, train_split: str, test_split: str,
             folds: int, text_column: str | None, label_column: str | None,
             oos_threshold: float | None, oos_label: str | None, calibrate: bool,
             no_embed: bool, limit: int | None, as_json: bool) -> None:
    """Train on --train and report accuracy, OOS recall, macro-F1, latency, time, memory."""
    from ivr.nlu.classifier import ClassifierConfig
    from ivr.nlu.evaluation import (
        DatasetError,
        cross_validate,
        evaluate,
        format_result,
        load_dataset,
        with_oos_label,
    )
    from ivr.nlu.matcher import HybridIntentMatcher
    from ivr.nlu.operating_point import choose_operating_point

    def splits(value: str) -> list[str]:
        return [s.strip() for s in value.split(",") if s.strip()]

    try:
        train = load_dataset(train_path, splits(train_split),
                             text_column=text_column, label_column=label_column)
        test = (load_dataset(test_path, splits(test_split),
                             text_column=text_column, label_column=label_column)
                if test_path else None)
    except DatasetError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if oos_label:
        train = with_oos_label(train, oos_label)
        test = None if test is None else with_oos_label(test, oos_label)
    if test is not None and limit:
        test = test[:limit]
    config = (ClassifierConfig(oos_threshold=oos_threshold) if oos_threshold is not None
              else ClassifierConfig())
    embedder = None if no_embed else _embedder()

    def factory() -> HybridIntentMatcher:
        return HybridIntentMatcher(embedder=embedder, config=config)

    if calibrate and test is None:
        click.echo("error: --calibrate needs --test", err=True)
        sys.exit(2)
    try:
        point = choose_operating_point(factory, train) if calibrate else None
        result = (evaluate(factory, train, test,
                           operating_point=point.confidence if point else None)
                  if test is not None else cross_validate(factory, train, folds))
    except (DatasetError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    chosen = {"operating_point": asdict(point)} if point else {}
    if as_json:
        payload = {"train": str(train_path), "test": str(test_path) if test_path else None,
                   "embedder": embedder.name if embedder else None, **result.as_dict(),
                   **chosen}
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(format_result(train_path.name, result))
        if point:
            click.echo(f"  rejection point {point.confidence:.3f}, chosen on the train rows: "
                       f"{point.in_scope_kept:.1%} of held-out rows kept, "
                       f"{point.hidden_rejected:.1%} of hidden intents' rows rejected")


def _embedder() -> Embedder:
    from ivr.nlu.embedder import OnnxMiniLmEmbedder

    return OnnxMiniLmEmbedder()
