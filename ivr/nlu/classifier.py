"""The learned part of the matcher: text -> calibrated, ranked intents.

Three scorers are fused per intent (a weighted sum of their scores):

* a linear SVM over TF-IDF word 1-2-grams and character 2-5-grams (within
  words) concatenated with the sentence embedding (when there is one):
  character n-grams keep misspelt or half-heard words close to the right
  ones, which is what ASR output needs, and the embedding columns let one
  margin weigh both kinds of evidence (+1 to +3 points over fusing separate
  models on CLINC150 and Banking77);
* a ridge classifier over sentence embeddings (optional), which carries
  paraphrases that share no words with the examples;
* rapidfuzz ``token_set_ratio`` against the examples (only for small example
  sets such as our catalogues: it is per-example work), which is strongest for
  very short phrases like "agent" or "invoice".

The fused top score, together with two measures of how familiar the query
is (its highest cosine similarity to a training example of its five
best-scoring intents, and minus its squared distance to the nearest intent
centroid), is turned into a probability of being right by logistic (Platt)
scaling fitted on a held-out slice of the training data plus any examples
labelled out-of-scope; that probability is the confidence the call flow
compares with its thresholds. The familiarity terms are what separate
out-of-scope questions: on CLINC150 val the best in-scope accuracy at 80 %
out-of-scope recall is 94.3 % from the top score alone, 95.6 % with the
similarity and about 96 % with both (with the fitted weights, 95.4 % at
85 %). Optionally (``margin_feature``) the top score's lead over the
runner-up is a further feature; in 3-fold CV on CLINC150 train+oos_train its
gain was within noise, so it is off. The calibration model and the final
model are fitted side by side in two threads.

With many out-of-scope examples (``oos_class_min``; the production matcher
ships about 2,800 English and 3,100 Dutch off-topic requests, many of them
near misses of a telecom / web-shop line: "my gas bill", "my parcel from
ikea", "the bank app's password") they are also a class of their own in the
SVM and ridge, and the best intent's lead over that class is a calibration
feature: that is what rejects "a pizza margherita please" or "wake me at
seven", which familiarity alone let through (issue #18). So is the query's
similarity to its nearest off-topic example (``off_topic_neighbour``), and a
language may add a nearest-neighbour veto (``set_operating_point``). The class
is never ranked, and its examples count for neither familiarity nor fuzzy
matching.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ivr.nlu.content_gate import ContentGate
from ivr.nlu.embedder import Embedder

FloatArray = npt.NDArray[np.float64]

_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """Tunable weights; defaults were chosen on CLINC150 val and our catalogues."""

    tfidf_weight: float = 0.5  # share of the (TF-IDF + embedding) SVM vs the embedding ridge
    embedding_feature_weight: float = 1.5  # scale of the embedding columns in the SVM
    fuzzy_weight: float = 0.6  # added on top for small example sets
    fuzzy_max_examples: int = 3000  # above this the fuzzy scan costs too much per query
    svm_c: float = 0.5
    ridge_alpha: float = 1.0
    random_features: int = 2048  # ReLU random projection of the embedding (0 = linear)
    oos_threshold: float = 0.5  # calibrated confidence below which a text is out of scope
    calibration_fraction: float = 0.15
    # >0: fit the calibration model on at most this many examples (less CPU; in
    # 3-fold CV on CLINC150 train, 5000 cost ~0.1 point in-scope at equal OOS recall).
    calibration_max_train: int = 0
    top_k: int = 5
    familiar_classes: int = 5  # familiarity looks at the examples of this many best classes
    oos_label: str = "oos"
    seed: int = 0
    parallel_fit: bool = True  # fit the calibration and final models in two threads
    # With oos examples, also calibrate on the top score's lead over the runner-up.
    # Off: +0.2 points in 3-fold CV on CLINC150 train was within noise.
    margin_feature: bool = False
    # With at least this many out-of-scope examples they also train a class of
    # their own (the SVM and ridge learn where off-topic requests lie), and the
    # calibration weighs the best intent's lead over that class. Fewer: they only
    # calibrate. Off-topic examples never count for familiarity or fuzzy matching.
    oos_class_min: int = 200
    # With an out-of-scope class, also calibrate on the query's highest cosine
    # similarity to an off-topic training example (a nearest-neighbour vote:
    # "my energy bill" sits next to "my gas bill went up", not to our invoices).
    off_topic_neighbour: bool = True


@dataclass(frozen=True, slots=True)
class Prediction:
    """Ranked (intent, confidence) pairs and the out-of-scope verdict."""

    ranked: tuple[tuple[str, float], ...]
    out_of_scope: bool


@dataclass(slots=True)
class FitReport:
    """What training took."""

    examples: int = 0
    intents: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    platt: tuple[float, float] = (0.0, 0.0)
    similarity_weight: float = 0.0
    closeness_weight: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Calibration:
    """Platt scaling: P(correct) = sigmoid(a * score + b + weights . query features)."""

    a: float = 4.0
    b: float = -2.0
    familiarity: float = 0.0
    closeness: float = 0.0
    margin: float = 0.0
    oos_lead: float = 0.0  # weight of the best intent's lead over the out-of-scope class
    neighbour: float = 0.0  # weight (<= 0) of the similarity to the nearest off-topic example

    @property
    def uses_embedding(self) -> bool:
        return bool(self.familiarity or self.closeness)


# A fitted _Model's array attributes (each absent or None in some set-ups).
_MODEL_ARRAYS = ("present", "ridge", "proj", "emb_off", "emb_train", "centroids",
                 "class_slices", "centroid_sq", "fz_classes", "fz_starts")


def _vectorizers(n_texts: int) -> list[Any]:
    """The SVM's two TF-IDF vectorizers (unfitted): word 1-2-grams and character
    2-5-grams within words. Stacked by hand: sklearn's FeatureUnion dispatches
    through joblib, which alone cost 1-10 ms per single query here."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return [
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                        min_df=2 if n_texts > 2000 else 1),
    ]


@dataclass(frozen=True, slots=True)
class _Linear:
    """A fitted linear SVM's weights: what scoring needs of sklearn's LinearSVC, kept
    as plain arrays so a fitted model can be stored without pickle (ivr.nlu.fit_cache)."""

    coef_: FloatArray
    intercept_: FloatArray
    classes_: npt.NDArray[np.int64]

    def decision_function(self, x: Any) -> FloatArray:
        """LinearSVC.decision_function: margins, one column per class (one 1-D
        column for two classes)."""
        dec = np.asarray(x @ self.coef_.T) + self.intercept_
        return np.asarray(dec.ravel() if dec.shape[1] == 1 else dec, dtype=np.float64)


class _Model:
    """One trained scorer set (used twice: for calibration, then on all data)."""

    def __init__(self, cfg: ClassifierConfig, use_fuzzy: bool) -> None:
        self.cfg = cfg
        self.use_fuzzy = use_fuzzy

    def fit(self, texts: Sequence[str], y: npt.NDArray[np.int64], emb: FloatArray | None,
            n_classes: int, in_scope: int | None = None) -> _Model:
        """Train on labels ``0..n_classes-1``; labels ``>= in_scope`` (the
        out-of-scope class) train the SVM and ridge only."""
        from sklearn.svm import LinearSVC

        self.n_classes = n_classes
        self.vecs = _vectorizers(len(texts))
        x = self._features(texts, emb, fit=True)
        # Per-query fast path: sklearn's transform/decision_function spend
        # ~1 ms per call validating input; the same arithmetic by hand is ~0.1 ms.
        self.fast_vecs = [(v.build_analyzer(), v.vocabulary_, np.asarray(v.idf_))
                          for v in self.vecs]
        present = np.unique(y)
        if len(present) >= 2:
            svm = LinearSVC(C=self.cfg.svm_c).fit(x, y)
            self.svm: _Linear | None = _Linear(np.asarray(svm.coef_), np.asarray(svm.intercept_),
                                               np.asarray(svm.classes_))
        else:
            self.svm = None
        self.present = present
        self.ridge: FloatArray | None = None
        self.proj: FloatArray | None = None
        if emb is not None:
            # Closed-form one-vs-rest ridge: seconds even for 15,000 examples,
            # and its scores live on the same +-1 scale as the SVM's margins.
            # A fixed random ReLU layer in front makes it non-linear (a cheap
            # kernel machine): +4 points on CLINC150 over plain ridge.
            if self.cfg.random_features > 0:
                rng = np.random.default_rng(self.cfg.seed)
                self.proj = rng.normal(size=(emb.shape[1], self.cfg.random_features)) / np.sqrt(
                    emb.shape[1]
                )
            a = self._expand(emb)
            targets = -np.ones((len(emb), n_classes))
            targets[np.arange(len(emb)), y] = 1.0
            gram = a.T @ a + self.cfg.ridge_alpha * np.eye(a.shape[1])
            self.ridge = np.asarray(np.linalg.solve(gram, a.T @ targets), dtype=np.float64)
        # Training embeddings for the familiarity feature (max cosine similarity),
        # sorted by class so a class's examples are one slice; and the class
        # centroids for the closeness feature. In-scope examples only.
        real = y < (n_classes if in_scope is None else in_scope)
        self.emb_off: npt.NDArray[np.float32] | None = None
        if emb is not None and not real.all():
            self.emb_off = np.asarray(emb[~real], dtype=np.float32)
        if not real.all():
            texts = [t for t, keep in zip(texts, real, strict=True) if keep]
            y = y[real]
            emb = emb[real] if emb is not None else None
        self.emb_train: npt.NDArray[np.float32] | None = None
        self.centroids: FloatArray | None = None
        if emb is not None and len(emb):
            order = np.argsort(y, kind="stable")
            self.emb_train = np.asarray(emb[order], dtype=np.float32)
            classes, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
            self.class_slices = np.zeros((n_classes, 2), dtype=np.int64)
            self.class_slices[classes, 0] = starts
            self.class_slices[classes, 1] = starts + counts
            cent = np.zeros((n_classes, emb.shape[1]))
            np.add.at(cent, y, emb)
            cent[classes] /= counts[:, None]
            self.centroids = cent
            # Classes without examples can never be the nearest centroid.
            self.centroid_sq = np.where(np.isin(np.arange(n_classes), classes),
                                        (cent * cent).sum(axis=1), np.inf)
        if self.use_fuzzy:
            from rapidfuzz import utils

            # Examples sorted by class so the per-class maximum is one reduceat.
            order = np.argsort(y, kind="stable")
            self.fz_texts = [utils.default_process(texts[i]) for i in order]
            self.fz_classes, self.fz_starts = np.unique(np.asarray(y)[order], return_index=True)
        return self

    def state(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
        """The fitted model as arrays and a JSON-able dict (see :meth:`restore`)."""
        arrays: dict[str, npt.NDArray[Any]] = {
            name: value for name in _MODEL_ARRAYS
            if (value := getattr(self, name, None)) is not None}
        if self.svm is not None:
            arrays |= {"svm_coef": self.svm.coef_, "svm_intercept": self.svm.intercept_,
                       "svm_classes": self.svm.classes_}
        vocabularies = []
        for i, (_, vocab, idf) in enumerate(self.fast_vecs):
            arrays[f"idf{i}"] = idf
            terms = [""] * len(vocab)
            for term, j in vocab.items():
                terms[j] = term
            vocabularies.append(terms)
        meta = {"n_classes": int(self.n_classes), "use_fuzzy": self.use_fuzzy,
                "vocabularies": vocabularies,
                "fz_texts": list(getattr(self, "fz_texts", []))}
        return arrays, meta

    @classmethod
    def restore(cls, cfg: ClassifierConfig, arrays: dict[str, npt.NDArray[Any]],
                meta: dict[str, Any]) -> _Model:
        """The model :meth:`state` described, scoring exactly as it did."""
        model = cls(cfg, bool(meta["use_fuzzy"]))
        model.n_classes = int(meta["n_classes"])
        model.vecs = _vectorizers(0)  # only their analyzers are used after fitting
        model.fast_vecs = [
            (v.build_analyzer(), {term: j for j, term in enumerate(terms)}, arrays[f"idf{i}"])
            for i, (v, terms) in enumerate(zip(model.vecs, meta["vocabularies"], strict=True))]
        model.svm = (_Linear(arrays["svm_coef"], arrays["svm_intercept"], arrays["svm_classes"])
                     if "svm_coef" in arrays else None)
        for name in ("ridge", "proj", "emb_off", "emb_train", "centroids"):
            setattr(model, name, None)  # absent when fitted without embeddings
        for name in _MODEL_ARRAYS:
            if name in arrays:
                setattr(model, name, arrays[name])
        if model.use_fuzzy:
            model.fz_texts = list(meta["fz_texts"])
        return model

    def scores(self, texts: Sequence[str], emb: FloatArray | None) -> FloatArray:
        out = np.full((len(texts), self.n_classes), -1.0)
        if self.svm is not None:
            if len(texts) == 1 and len(self.svm.classes_) > 2:
                out[:, self.svm.classes_] = self._svm_one(texts[0], emb)
            else:
                x = self._features(texts, emb)
                if len(self.svm.classes_) > 2:
                    dec = np.asarray(x @ self.svm.coef_.T) + self.svm.intercept_
                else:
                    dec = self.svm.decision_function(x)
                out[:, self.svm.classes_] = dec
        elif len(self.present) == 1:
            out[:, self.present[0]] = 1.0
        if self.ridge is not None and emb is not None:
            a = self._expand(emb)
            w = self.cfg.tfidf_weight
            out = w * out + (1.0 - w) * (a @ self.ridge)
        if self.use_fuzzy:
            out += self.cfg.fuzzy_weight * self._fuzzy(texts)
        return out

    def _svm_one(self, text: str, emb: FloatArray | None) -> FloatArray:
        """SVM margins of one query by gathering the weight columns of its non-zero
        features: the same sum as the sparse product, without building scipy
        matrices (five of them cost ~0.5 ms a query, a tenth of the budget)."""
        assert self.svm is not None
        cols: list[npt.NDArray[np.int64]] = []
        vals: list[FloatArray] = []
        offset = 0
        for analyzer, vocab, idf in self.fast_vecs:
            c, w = _tfidf_row(text, analyzer, vocab, idf)
            cols.append(c + offset)
            vals.append(w)
            offset += len(idf)
        if emb is not None and self.cfg.embedding_feature_weight > 0:
            cols.append(np.arange(offset, offset + emb.shape[1]))
            vals.append(np.asarray(emb[0], dtype=np.float64) * self.cfg.embedding_feature_weight)
        c_all, v_all = np.concatenate(cols), np.concatenate(vals)  # both vectorizers: never []
        return np.asarray(self.svm.coef_[:, c_all] @ v_all + self.svm.intercept_,
                          dtype=np.float64)

    def closeness(self, emb: FloatArray | None, scores: FloatArray
                  ) -> tuple[FloatArray, FloatArray]:
        """How familiar each query is: (highest cosine similarity to a training
        example of its ``familiar_classes`` best-scoring classes, minus the
        squared distance to the nearest class centroid); zeros without embeddings.

        Only the best classes' examples are searched: the nearest example is
        almost always among them, and a single query then reads a few hundred
        rows instead of every example (15,000 on CLINC150, ~0.7 ms a query).
        Batch and single queries compute the same numbers.
        """
        n = len(scores)
        if self.emb_train is None or self.centroids is None or emb is None:
            return np.zeros(n), np.zeros(n)
        q = np.asarray(emb, dtype=np.float64)
        # -|q - c|^2 = 2 q.c - |c|^2 - |q|^2
        d2 = 2.0 * (q @ self.centroids.T) - self.centroid_sq - (q * q).sum(axis=1)[:, None]
        near = np.asarray(d2.max(axis=1), dtype=np.float64)
        k = min(self.cfg.familiar_classes, scores.shape[1])
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        fam = np.zeros(n)
        qf = q.astype(np.float32)
        if n == 1:
            fam[0] = max((float((self.emb_train[a:b] @ qf[0]).max())
                          for a, b in self.class_slices[best[0]] if b > a), default=0.0)
            return fam, near
        slices = self.class_slices[: scores.shape[1]]  # in-scope classes only
        present = slices[:, 1] > slices[:, 0]
        for lo in range(0, n, 512):  # bounded memory for large test sets
            sim = qf[lo:lo + 512] @ self.emb_train.T
            per_class = np.full((len(sim), scores.shape[1]), -1.0, dtype=np.float32)
            per_class[:, present] = np.maximum.reduceat(sim, slices[present, 0], axis=1)
            fam[lo:lo + 512] = np.take_along_axis(per_class, best[lo:lo + 512], axis=1).max(axis=1)
        return fam, near

    def off_topic_similarity(self, emb: FloatArray | None) -> FloatArray:
        """Each query's highest cosine similarity to an off-topic training
        example (zeros without them or without embeddings)."""
        if emb is None or self.emb_off is None:
            return np.zeros(0 if emb is None else len(emb))
        q = np.asarray(emb, dtype=np.float32)
        return np.concatenate([(q[lo:lo + 512] @ self.emb_off.T).max(axis=1)
                               for lo in range(0, len(q), 512)]).astype(np.float64)

    def _features(self, texts: Sequence[str], emb: FloatArray | None, fit: bool = False) -> Any:
        import scipy.sparse as sp

        if fit:
            parts = [v.fit_transform(texts) for v in self.vecs]
        else:
            parts = [self._tfidf(texts, *fv) for fv in self.fast_vecs]
        if emb is not None and self.cfg.embedding_feature_weight > 0:
            parts.append(sp.csr_matrix(emb * self.cfg.embedding_feature_weight))
        return sp.hstack(parts, format="csr")

    @staticmethod
    def _tfidf(texts: Sequence[str], analyzer: Any, vocab: dict[str, int],
               idf: FloatArray) -> Any:
        """TfidfVectorizer.transform (sublinear tf, l2 norm) without sklearn's overhead."""
        import scipy.sparse as sp

        indptr = [0]
        indices: list[int] = []
        values: list[float] = []
        for text in texts:
            cols, w = _tfidf_row(text, analyzer, vocab, idf)
            indices.extend(cols.tolist())
            values.extend(w.tolist())
            indptr.append(len(indices))
        return sp.csr_matrix((values, indices, indptr), shape=(len(texts), len(idf)))

    def _expand(self, emb: FloatArray) -> FloatArray:
        feats = np.maximum(emb @ self.proj, 0.0) if self.proj is not None else emb
        return np.hstack([feats, np.ones((len(feats), 1))])

    def _fuzzy(self, texts: Sequence[str]) -> FloatArray:
        from rapidfuzz import fuzz, process, utils

        queries = [utils.default_process(t) for t in texts]
        sim = process.cdist(queries, self.fz_texts, scorer=fuzz.token_set_ratio,
                            dtype=np.float32) / 100.0
        best = np.zeros((len(texts), self.n_classes))
        best[:, self.fz_classes] = np.maximum.reduceat(sim, self.fz_starts, axis=1)
        # Only strong fuzzy matches count: token_set_ratio gives 40-60 to
        # unrelated sentences that share a few function words.
        return np.clip((best - 0.6) / 0.4, 0.0, 1.0)


def _tfidf_row(text: str, analyzer: Any, vocab: dict[str, int], idf: FloatArray
               ) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """One text's TF-IDF columns and weights (sublinear tf, l2-normalised)."""
    counts: dict[int, int] = {}
    for term in analyzer(text):
        j = vocab.get(term)
        if j is not None:
            counts[j] = counts.get(j, 0) + 1
    cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    w = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64,
                                  count=len(counts)))) * idf[cols]
    norm = float(np.sqrt(w @ w))
    return cols, (w / norm if norm > 0 else w)


def _margins(scores: FloatArray) -> FloatArray:
    """Lead of each row's top score over its second (1.0 with a single class)."""
    if scores.shape[1] < 2:
        return np.ones(len(scores))
    two = -np.partition(-scores, 1, axis=1)[:, :2]
    return np.asarray(two[:, 0] - two[:, 1], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _QueryFeatures:
    """What calibration sees of each query: its best in-scope intent and score,
    that score's lead over the runner-up and over the out-of-scope class (0
    without one), and the query's familiarity and closeness."""

    best: npt.NDArray[np.int64]
    top: FloatArray
    margin: FloatArray
    lead: FloatArray
    fam: FloatArray
    near: FloatArray
    neighbour: FloatArray

    def join(self, other: _QueryFeatures) -> _QueryFeatures:
        return _QueryFeatures(*(np.concatenate([a, b]) for a, b in
                                zip(self._parts(), other._parts(), strict=True)))

    def _parts(self) -> tuple[Any, ...]:
        return (self.best, self.top, self.margin, self.lead, self.fam, self.near,
                self.neighbour)


def _query_features(model: _Model, texts: Sequence[str], emb: FloatArray | None,
                    n_in: int) -> _QueryFeatures:
    every = model.scores(texts, emb)
    scores = every[:, :n_in]
    top = scores.max(axis=1)
    lead = top - every[:, n_in] if every.shape[1] > n_in else np.zeros(len(top))
    fam, near = model.closeness(emb, scores)
    neighbour = model.off_topic_similarity(emb)
    if len(neighbour) != len(top):
        neighbour = np.zeros(len(top))
    return _QueryFeatures(scores.argmax(axis=1), top, _margins(scores), lead, fam, near,
                          neighbour)


@functools.cache
def one_blas_thread() -> None:
    """Put BLAS on one thread for the rest of the process (first call only).

    The matcher's products are small: a second BLAS thread only adds its
    wake-up to a single query (up to a 4 ms scheduler tick on a busy 2-core
    box), and training already fits two models side by side, one per core.
    Set once and never restored because threadpoolctl's limits are
    process-wide and, for OpenBLAS, owned by one thread: per-query limits from
    concurrent worker threads were ignored or restored out of order, which
    could leave BLAS on one thread anyway, or on two during a query.
    """
    import scipy.linalg  # noqa: F401  (loads scipy's own BLAS, so the limit covers it too)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _now(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run ``fn`` at once and wrap the result like ``Executor.submit`` would."""
    done: Future[Any] = Future()
    done.set_result(fn(*args))
    return done


class IntentClassifier:
    """Trainable hybrid classifier with calibrated confidence and out-of-scope.

    ``fit`` takes parallel lists of texts and labels; labels equal to
    ``config.oos_label`` calibrate rejection (and, from ``oos_class_min`` of
    them on, also train an out-of-scope class that is never ranked).
    """

    def __init__(self, embedder: Embedder | None = None,
                 config: ClassifierConfig | None = None) -> None:
        self.embedder = embedder
        self.config = config or ClassifierConfig()
        self.classes: tuple[str, ...] = ()
        self._model: _Model | None = None
        self._cal = _Calibration()
        self._fit_cal = self._cal  # as fitted, before set_operating_point shifts _cal
        self._n_in = 0
        self._oos_class = False
        # Nearest-neighbour veto (see set_operating_point); None: off.
        self._veto: float | None = None
        self._in_texts: tuple[str, ...] = ()  # in-scope training texts (the gate's vocabulary)
        self._gate: ContentGate | None = None  # see set_content_gate; None: off
        self.report = FitReport()

    @property
    def fitted(self) -> bool:
        return self._model is not None

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> IntentClassifier:
        """Train on (text, label) pairs; raises ValueError on unusable data."""
        if len(texts) != len(labels):
            raise ValueError("texts and labels differ in length")
        cfg = self.config
        started = time.perf_counter()
        one_blas_thread()
        pairs = [(str(t), str(lab)) for t, lab in zip(texts, labels, strict=True) if str(t).strip()]
        ins = [(t, lab) for t, lab in pairs if lab != cfg.oos_label]
        oos = [t for t, lab in pairs if lab == cfg.oos_label]
        if not ins:
            raise ValueError("no in-scope training examples")
        classes = tuple(sorted({lab for _, lab in ins}))
        index = {c: i for i, c in enumerate(classes)}
        x_text = [t for t, _ in ins]
        self._in_texts = tuple(x_text)
        self._gate = None
        y = np.array([index[lab] for _, lab in ins], dtype=np.int64)
        use_fuzzy = len(x_text) <= cfg.fuzzy_max_examples

        t0 = time.perf_counter()
        # Embedded apart so a cached embedder keeps the (fixed, large) off-topic
        # set's vectors when only the catalogue changes.
        emb = self._embed(x_text)
        emb_oos = self._embed(oos)
        embed_s = time.perf_counter() - t0
        n_in = len(classes)
        if len(oos) >= cfg.oos_class_min:
            # Off-topic examples form one more class (index n_in).
            x_text = x_text + oos
            y = np.concatenate([y, np.full(len(oos), n_in, dtype=np.int64)])
            if emb is not None and emb_oos is not None:
                emb = np.vstack([emb, emb_oos])
            oos, emb_oos = [], None
            n_fit = n_in + 1
        else:
            n_fit = n_in

        report = FitReport(examples=len(pairs), intents=len(classes))
        # The calibration model and the final model are independent; liblinear
        # and BLAS release the GIL, so on two cores fitting them side by side
        # nearly halves training time (CLINC150: ~58 s -> ~35 s of fitting).
        with ThreadPoolExecutor(max_workers=1) as pool:
            calibration = (pool.submit if cfg.parallel_fit else _now)(
                self._calibrate, x_text, y, emb, oos, emb_oos, (n_in, n_fit), use_fuzzy, report
            )
            self._model = _Model(cfg, use_fuzzy).fit(x_text, y, emb, n_fit, n_in)
            self._cal = self._fit_cal = calibration.result()
        self.classes = classes
        self._n_in = n_in
        self._oos_class = n_fit > n_in
        report.embed_seconds = embed_s
        report.seconds = time.perf_counter() - started
        report.platt = (self._cal.a, self._cal.b)
        report.similarity_weight = self._cal.familiarity
        report.closeness_weight = self._cal.closeness
        self.report = report
        return self

    def state(self) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
        """The fitted classifier as arrays and a JSON-able dict, without pickle
        (ivr.nlu.fit_cache stores them): what ``fit`` learnt, before any
        operating point or content gate, which the caller sets again after
        :meth:`from_state` as it did after ``fit``."""
        if self._model is None:
            raise RuntimeError("classifier is not fitted")
        arrays, model_meta = self._model.state()
        meta = {"classes": list(self.classes), "n_in": self._n_in,
                "oos_class": self._oos_class, "calibration": dataclasses.asdict(self._fit_cal),
                "in_texts": list(self._in_texts), "report": dataclasses.asdict(self.report),
                "model": model_meta}
        return {f"m.{k}": v for k, v in arrays.items()}, meta

    @classmethod
    def from_state(cls, arrays: dict[str, npt.NDArray[Any]], meta: dict[str, Any],
                   embedder: Embedder | None = None,
                   config: ClassifierConfig | None = None) -> IntentClassifier:
        """A classifier that predicts exactly as the one :meth:`state` came from
        (given the same ``embedder`` and ``config``). Raises KeyError, TypeError or
        ValueError on a state that does not fit together."""
        clf = cls(embedder, config)
        model_arrays = {k[2:]: v for k, v in arrays.items() if k.startswith("m.")}
        clf._model = _Model.restore(clf.config, model_arrays, meta["model"])
        clf.classes = tuple(str(c) for c in meta["classes"])
        clf._n_in = int(meta["n_in"])
        clf._oos_class = bool(meta["oos_class"])
        clf._cal = clf._fit_cal = _Calibration(**meta["calibration"])
        clf._in_texts = tuple(str(t) for t in meta["in_texts"])
        report = dict(meta["report"])
        report["platt"] = tuple(report["platt"])
        clf.report = FitReport(**report)
        if len(clf.classes) != clf._n_in or clf._model.n_classes < clf._n_in:
            raise ValueError("stored classifier state does not fit together")
        return clf

    def _embed(self, texts: Sequence[str]) -> FloatArray | None:
        if self.embedder is None or not texts:
            return None
        return np.asarray(self.embedder.embed(list(texts)), dtype=np.float64)

    def _calibrate(self, x_text: list[str], y: npt.NDArray[np.int64], emb: FloatArray | None,
                   oos: list[str], emb_oos: FloatArray | None, sizes: tuple[int, int],
                   use_fuzzy: bool, report: FitReport) -> _Calibration:
        """Fit Platt scaling ((top score, familiarity, closeness[, lead over the
        out-of-scope class]) -> P(correct)) on a held-out slice."""
        n_in, n_fit = sizes
        rng = np.random.default_rng(self.config.seed)
        hold = np.zeros(len(y), dtype=bool)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            if len(idx) >= 4:  # keep at least 3 examples of a class for training
                k = max(1, round(len(idx) * self.config.calibration_fraction))
                hold[rng.choice(idx, size=k, replace=False)] = True
        if hold.sum() < 10:
            report.notes.append("too little data to calibrate; default confidence mapping")
            return _Calibration()
        train = ~hold
        cap = self.config.calibration_max_train
        if 0 < cap < int(train.sum()):
            keep = rng.choice(np.flatnonzero(train), size=cap, replace=False)
            train = np.zeros(len(y), dtype=bool)
            train[keep] = True
        model = _Model(self.config, use_fuzzy).fit(
            [t for t, keep in zip(x_text, train, strict=True) if keep], y[train],
            emb[train] if emb is not None else None, n_fit, n_in,
        )
        held_texts = [t for t, h in zip(x_text, hold, strict=True) if h]
        feats_in = _query_features(model, held_texts, emb[hold] if emb is not None else None,
                                   n_in)
        correct = (feats_in.best == y[hold]).astype(int)  # held off-topic rows: never right
        feats = feats_in
        if oos:
            feats = feats_in.join(_query_features(model, oos, emb_oos, n_in))
            correct = np.concatenate([correct, np.zeros(len(oos), dtype=int)])
        if correct.min() == correct.max():
            # Every held-out example right (typical for a small clean catalogue):
            # anchor the curve so the weakest held-out score maps to ~0.7.
            lo = float(np.quantile(feats.top, 0.05))
            return _Calibration(6.0, 6.0 * (-lo) + 0.85)
        return self._fit_platt(feats, correct, off_topic=bool(oos) or n_fit > n_in,
                               has_emb=emb is not None, lead=n_fit > n_in)

    def _fit_platt(self, f: _QueryFeatures, correct: npt.NDArray[np.int64], *,
                   off_topic: bool, has_emb: bool, lead: bool) -> _Calibration:
        from sklearn.linear_model import LogisticRegression

        # Familiarity and closeness only help to reject what is unlike the
        # examples, so they are used only when out-of-scope examples show how
        # they should weigh.
        use_fam = off_topic and has_emb
        use_margin = use_fam and self.config.margin_feature
        cols = [f.top, f.fam, f.near] if use_fam else [f.top]
        if use_margin:
            cols.append(f.margin)
        if lead:
            cols.append(f.lead)
        use_neighbour = lead and has_emb and self.config.off_topic_neighbour
        if use_neighbour:
            cols.append(-f.neighbour)  # negated so every weight must be >= 0
        lr = LogisticRegression(C=100.0).fit(np.column_stack(cols), correct)
        w = [max(float(v), 0.0) for v in lr.coef_[0, 1:]]  # more familiar never means less sure
        return _Calibration(float(lr.coef_[0, 0]), float(lr.intercept_[0]),
                            familiarity=w[0] if use_fam else 0.0,
                            closeness=w[1] if use_fam else 0.0,
                            margin=w[2] if use_margin else 0.0,
                            oos_lead=w[2 * use_fam + use_margin] if lead else 0.0,
                            neighbour=-w[-1] if use_neighbour else 0.0)

    def set_operating_point(self, confidence: float, neighbour_veto: float | None = None
                            ) -> None:
        """Shift the calibration so a query that scored ``confidence`` now scores
        ``config.oos_threshold``: the rejection point chosen on a language's dev
        data (paraphrases and off-topic requests) becomes the one the matcher and
        the flow use. Calibration alone is fitted on held-out catalogue examples,
        which are closer to the rest of the catalogue than callers' wordings are.

        ``neighbour_veto`` (needs embeddings and off-topic examples): a second,
        independent check that also rejects a query whose nearest catalogue
        example (among its best intents) is not at least this much more similar
        than its nearest off-topic example; its confidence is then capped below
        the threshold, so every consumer sees the same verdict."""
        if not 0.0 < confidence < 1.0:
            raise ValueError("operating point must be a probability strictly between 0 and 1")
        self._veto = neighbour_veto

        def logit(p: float) -> float:
            return float(np.log(p / (1.0 - p)))

        c = self._cal
        self._cal = dataclasses.replace(
            c, b=c.b - logit(confidence) + logit(self.config.oos_threshold))

    def set_content_gate(self, function_words: Iterable[str] | None) -> None:
        """Reject, whatever the models score, a text with no content word the
        in-scope examples use (``ContentGate``: only ``function_words``, such as
        hesitations, greetings and yes/no, or words the catalogue never uses:
        "uh", "blah blah blah", "thanks for watching"). Its confidence is capped
        below the threshold, as the veto does. ``None`` turns the gate off."""
        if self._model is None:
            raise RuntimeError("classifier is not fitted")
        self._gate = None if function_words is None else ContentGate(self._in_texts,
                                                                     function_words)

    def confidence(self, score: FloatArray, familiarity: float = 0.0, closeness: float = 0.0,
                   margin: FloatArray | float = 0.0,
                   oos_lead: FloatArray | float = 0.0,
                   neighbour: float = 0.0) -> FloatArray:
        """Map fused scores (and the query's familiarity and closeness, each
        score's lead over the best other one and over the out-of-scope class)
        to calibrated probabilities."""
        c = self._cal
        z = (c.a * score + c.familiarity * familiarity + c.closeness * closeness
             + c.margin * margin + c.oos_lead * oos_lead + c.neighbour * neighbour + c.b)
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def predict_many(self, texts: Sequence[str]) -> list[Prediction]:
        """Batch prediction; empty or letter-less texts are out of scope."""
        if self._model is None:
            raise RuntimeError("classifier is not fitted")
        one_blas_thread()
        return self._predict_many(texts)

    def _predict_many(self, texts: Sequence[str]) -> list[Prediction]:
        assert self._model is not None
        out: list[Prediction | None] = [None] * len(texts)
        live = [i for i, t in enumerate(texts) if _LETTERS.search(t or "")]
        if live:
            live_texts = [texts[i] for i in live]
            emb = self._embed(live_texts)
            every = self._model.scores(live_texts, emb)
            scores = every[:, : self._n_in]
            off = every[:, self._n_in] if self._oos_class else np.zeros(len(live))
            veto = self._veto if self._model.emb_off is not None else None
            fam, near = self._model.closeness(
                emb if self._cal.uses_embedding or veto is not None else None, scores)
            nb = (self._model.off_topic_similarity(emb) if self._cal.neighbour or veto is not None
                  else np.zeros(len(live)))
            cap = self.config.oos_threshold - 1e-4  # still below it after 4-digit rounding
            k = min(self.config.top_k, scores.shape[1])
            for row, i in enumerate(live):
                order = np.argsort(-scores[row])[:k]
                top = scores[row, order]
                lead = top - (top[1] if len(top) > 1 else top[0] - 1.0)
                lead[1:] = top[1:] - top[0]
                conf = self.confidence(top, float(fam[row]), float(near[row]),
                                       lead if self._cal.margin else 0.0,
                                       top - off[row] if self._cal.oos_lead else 0.0,
                                       float(nb[row]))
                if self._ruled_out(texts[i], float(fam[row] - nb[row]), veto):
                    conf = np.minimum(conf, cap)
                ranked = tuple(
                    (self.classes[c], round(float(p), 4)) for c, p in zip(order, conf, strict=True)
                )
                out[i] = Prediction(ranked, bool(conf[0] < self.config.oos_threshold))
        return [p if p is not None else Prediction((), True) for p in out]

    def _ruled_out(self, text: str, neighbour_margin: float, veto: float | None) -> bool:
        """The rules beside the calibrated confidence: the nearest-neighbour veto
        and the content gate."""
        if veto is not None and neighbour_margin < veto:
            return True
        return self._gate is not None and not self._gate.has_content(text)

    def predict(self, text: str) -> Prediction:
        return self.predict_many([text])[0]

    def neighbour_margins(self, texts: Sequence[str]) -> FloatArray:
        """Per text, how much more similar its nearest catalogue example (among its
        best intents) is than its nearest off-topic example: what the
        ``neighbour_veto`` compares (for choosing it on dev data)."""
        if self._model is None:
            raise RuntimeError("classifier is not fitted")
        one_blas_thread()
        emb = self._embed(texts)
        if emb is None or self._model.emb_off is None:
            return np.full(len(texts), np.inf)
        scores = self._model.scores(texts, emb)[:, : self._n_in]
        fam, _ = self._model.closeness(emb, scores)
        return np.asarray(fam - self._model.off_topic_similarity(emb), dtype=np.float64)
