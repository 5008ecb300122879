"""Full-text search text processing, done the way Couchbase Lite's FTS indexes do it.

Couchbase Lite's FTS tokenizer (LiteCore's ``unicodesn``) splits words by the rules of SQLite's
``unicode61``, folds case, optionally strips accents and, when the index has a language, drops
English or French stop words and stems the rest with Snowball. Python's sqlite3 cannot register a
tokenizer, so that is done here: :func:`index_text` gives the words to store (one space between
them) and :func:`match_query` rewrites a user's query so that its words are processed alike.

The FTS4 table uses SQLite's ``simple`` tokenizer (:data:`TOKENIZER`), which hands the stored words
back unchanged: it splits only at ASCII non-alphanumerics (none are left inside a word), lowercases
only ASCII (words are already folded) and keeps every non-ASCII character in its word. ``unicode61``
would re-split and re-fold them by its own Unicode 6.1 tables, shifting word positions (phrases,
``NEAR``) and hit counts (RANK). :func:`match_query` writes SQLite's enhanced query syntax (``AND``,
``NOT``, parentheses), which needs SQLite built with ``SQLITE_ENABLE_FTS3_PARENTHESIS``.
"""

from __future__ import annotations

import functools
import math
import re
import struct
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import snowballstemmer  # type: ignore[import-untyped]

from couchlite import _tuning
from couchlite.query.values import MISSING

__all__ = [
    "LANGUAGES",
    "MATCH_NOTHING",
    "TOKENIZER",
    "FullTextQueryError",
    "index_text",
    "match_query",
    "rank",
    "snowball_language",
]

#: the FTS4 tokenizer of the table holding :func:`index_text`'s output: ``tokenize=simple``
TOKENIZER: Final = "simple"

#: a MATCH string that matches no row: an empty phrase (what a query of only stop words becomes)
MATCH_NOTHING: Final = '""'

# (the bounds are in _tuning, with their reasons)
MAX_QUERY_LENGTH: Final = _tuning.FTS_MAX_QUERY_LENGTH
MAX_QUERY_TERMS: Final = _tuning.FTS_MAX_QUERY_TERMS
MAX_QUERY_NESTING: Final = _tuning.FTS_MAX_QUERY_NESTING
MAX_QUERY_TREE_DEPTH: Final = _tuning.FTS_MAX_QUERY_TREE_DEPTH
MAX_NEAR_DISTANCE: Final = _tuning.FTS_MAX_NEAR_DISTANCE
MAX_STEMMED_LENGTH: Final = _tuning.FTS_MAX_STEMMED_LENGTH
STEM_CACHE_SIZE: Final = _tuning.FTS_STEM_CACHE_SIZE
SMALL_CACHE_SIZE: Final = _tuning.FTS_SMALL_CACHE_SIZE


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# LiteCore's Dutch is Snowball's original algorithm, which Snowball 3 renamed "dutch_porter".
_DUTCH: Final = "dutch_porter" if "dutch_porter" in snowballstemmer.algorithms() else "dutch"


def _languages(pairs: str) -> Mapping[str, str]:
    table: dict[str, str] = {}
    for pair in pairs.split():
        code, name = pair.split(":")
        table[code] = table[name] = _DUTCH if name == "dutch" else name
    return MappingProxyType(table)


#: LiteCore's stemming languages, by ISO-639 code and by English name, to Snowball's algorithm
LANGUAGES: Final = _languages(
    "da:danish nl:dutch en:english fi:finnish fr:french de:german hu:hungarian it:italian "
    "no:norwegian porter:porter pt:portuguese ro:romanian ru:russian es:spanish sv:swedish "
    "tr:turkish"
)

# LiteCore's English list (Snowball's stop.txt) also holds contractions such as "don't"; those can
# never equal a word, since an apostrophe separates words, so they are left out.
_ENGLISH_STOP_WORDS: Final = _word_set(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom this
    that these those am is are was were be been being have has had having do does did doing
    would should could ought cannot a an the and but if or because as until while of at by for
    with about against between into through during before after above below to from up down in
    out on off over under again further then once here there when where why how all any both
    each few more most other some such no nor not only own same so than too very
    """
)

_FRENCH_STOP_WORDS: Final = _word_set(
    """
    au aux avec ce ces dans de des du elle en et eux il je la le leur lui ma mais me même mes moi
    mon ne nos notre nous on ou par pas pour qu que qui sa se ses son sur ta te tes toi ton tu un
    une vos votre vous c d j l à m n s t y été étée étées étés étant suis es est sommes êtes sont
    serai seras sera serons serez seront serais serait serions seriez seraient étais était étions
    étiez étaient fus fut fûmes fûtes furent sois soit soyons soyez soient fusse fusses fût
    fussions fussiez fussent ayant eu eue eues eus ai as avons avez ont aurai auras aura aurons
    aurez auront aurais aurait aurions auriez auraient avais avait avions aviez avaient eut eûmes
    eûtes eurent aie aies ait ayons ayez aient eusse eusses eût eussions eussiez eussent ceci cela
    celà cet cette ici ils les leurs quel quels quelle quelles sans soi
    """
)

# LiteCore has stop-word lists for these two languages only.
_STOP_WORDS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {"english": _ENGLISH_STOP_WORDS, "french": _FRENCH_STOP_WORDS}
)


class FullTextQueryError(ValueError):
    """A full-text query that cannot be searched (its message says why)."""


def snowball_language(language: str | None) -> str | None:
    """The Snowball algorithm for an FTS index's language, or None if it has no stemmer.

    As in LiteCore, a country suffix is ignored (``en_US`` is ``en``); unlike it, case is too.
    A language without a stemmer (None, ``""``, ``"ja"``) means no stemming and no stop words.
    """
    if not language:
        return None
    return LANGUAGES.get(language.partition("_")[0].lower())


@dataclass(frozen=True, slots=True)
class _Profile:
    algorithm: str | None
    stop_words: frozenset[str]
    ignore_accents: bool


@functools.lru_cache(maxsize=SMALL_CACHE_SIZE)
def _profile(language: str | None, ignore_accents: bool) -> _Profile:
    algorithm = snowball_language(language)
    return _Profile(algorithm, _STOP_WORDS.get(algorithm or "", frozenset()), ignore_accents)


@functools.lru_cache(maxsize=STEM_CACHE_SIZE)
def _stem(algorithm: str, word: str) -> str:
    # A stemmer keeps state while it works, so one is made for each word not yet cached (cheap
    # beside the stemming) rather than shared between threads.
    return str(snowballstemmer.stemmer(algorithm).stemWord(word)) or word


# Runs of characters other than ASCII punctuation, space and controls: ASCII words as they are,
# and the stretches where non-ASCII characters must be looked at one by one.
_CHUNK: Final = re.compile(r"[^\x00-/:-@\[-`{-\x7f]+")


def _words(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """The (start, end) of each word of text[start:end], by unicode61's rules.

    A word is a run of letters, digits and private-use characters (Unicode categories L*, N*,
    Co), carrying along the combining marks that follow its characters. unicode61 carries only
    25 Latin accents along and splits words at other marks (e.g. Devanagari vowel signs);
    every mark is carried here, so that such words stay whole.
    """
    for match in _CHUNK.finditer(text, start, len(text) if end is None else end):
        chunk_start, chunk_end = match.span()
        if match.group().isascii():
            yield chunk_start, chunk_end
            continue
        word_start = -1
        for i in range(chunk_start, chunk_end):
            char = text[i]
            kind = "L" if char.isascii() else unicodedata.category(char)
            if kind[0] in "LN" or kind == "Co":
                if word_start < 0:
                    word_start = i
            elif kind[0] == "M":
                continue
            elif word_start >= 0:
                yield word_start, i
                word_start = -1
        if word_start >= 0:
            yield word_start, chunk_end


@functools.lru_cache(maxsize=SMALL_CACHE_SIZE)
def _fold_char(char: str) -> str:
    # unicode61 folds by Unicode's simple (one-to-one) case folding: "ß" stays "ß".
    folded = char.casefold()
    if len(folded) == 1:
        return folded
    lowered = char.lower()
    return lowered if len(lowered) == 1 else char


def _fold(word: str, ignore_accents: bool) -> str:
    if not word.isascii() and ignore_accents:
        # Before folding, so that a letter that only its accent kept from folding ("İ") folds.
        bare = "".join(
            c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c)
        )
        word = unicodedata.normalize("NFC", bare)
    return word.lower() if word.isascii() else "".join(map(_fold_char, word))


def _term(word: str, profile: _Profile, prefix: bool) -> str | None:
    """The stored form of one word, or None for a stop word (never one followed by ``*``: in a
    query that is a prefix, "on*" finding "one"; LiteCore's tokenizer, unable to tell a query
    from a document, keeps such a word in documents too)."""
    folded = _fold(word, profile.ignore_accents)
    if not prefix and folded in profile.stop_words:
        return None
    if profile.algorithm is None or len(folded) > MAX_STEMMED_LENGTH:
        return folded
    return _stem(profile.algorithm, folded)


def _nfc(text: str) -> str:
    # Canonically equal spellings ("é" and "e" + U+0301) must give the same words.
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _scalar_texts(value: Any) -> Iterator[str]:
    """The text of each scalar in value, depth first, as LiteCore's ``fl_fts_value`` finds them.

    Strings as they are, booleans as ``T``/``F``, numbers printed; ``null`` adds nothing; arrays
    and objects are walked into (object members in key order, as Fleece stores them).
    """
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, bool):
            yield "T" if item else "F"
        elif isinstance(item, int):
            yield str(item)
        elif isinstance(item, float):
            # Fleece stores a double with an integral value as an integer, and prints it so.
            yield str(int(item)) if item.is_integer() and abs(item) < 2**63 else repr(item)
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(item[key] for key in sorted(item, reverse=True))
        elif item is not None:
            raise TypeError(f"not a JSON value: {type(item).__name__}")


def index_text(value: Any, language: str | None, ignore_accents: bool) -> str | None:
    """The text to store in an FTS4 column for a document's value at an indexed expression.

    The processed words of every string, number and boolean in value (see :func:`_scalar_texts`),
    one space between them, so that a phrase can run from one array item into the next, as in
    LiteCore. None (not indexed) for MISSING; ``""`` when value holds no words.
    """
    if value is MISSING:
        return None
    profile = _profile(language, ignore_accents)
    terms: list[str] = []
    for piece in _scalar_texts(value):
        text = _nfc(piece)
        for start, end in _words(text):
            term = _term(text[start:end], profile, end < len(text) and text[end] == "*")
            if term is not None:
                terms.append(term)
    return " ".join(terms)


# --- queries ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Phrase:
    words: tuple[str, ...]  # as FTS takes them: "^word" only first in a column, "word*" a prefix
    column: str | None = None


@dataclass(frozen=True, slots=True)
class _Empty:
    """An operand without a word to search for: a bare stop word, punctuation or ``()`` is left
    out of the query (:data:`_IGNORED`); a quoted phrase of only stop words matches nothing."""

    matches_nothing: bool


@dataclass(frozen=True, slots=True)
class _Group:
    op: str  # "AND" or "OR"
    children: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Not:
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _Near:
    phrases: tuple[_Phrase, ...]
    distances: tuple[int, ...]  # distances[i] is between phrases[i] and phrases[i + 1]


@dataclass(frozen=True, slots=True)
class _Op:
    name: str
    distance: int = 10  # NEAR's default, as in SQLite


_Node = _Phrase | _Empty | _Group | _Not | _Near
_Item = _Node | _Op | str  # str: "(" or ")"
_IGNORED: Final = _Empty(matches_nothing=False)
_NOTHING: Final = _Empty(matches_nothing=True)

_NOT_SPACE: Final = re.compile(r"[^ \t\n\r\v\f]")  # SQLite's FTS parser skips exactly these
_WORD_END: Final = re.compile(r'[ \t\n\r\v\f"()]')
_OPERATOR: Final = re.compile(r"(OR|AND|NOT|NEAR)(?:/([0-9]+))?")


def _items(query: str, profile: _Profile, columns: Mapping[str, str]) -> Iterator[_Item]:
    """The operators, parentheses and phrases of a query, split as SQLite's FTS parser does.

    A bare word gives one phrase for each word inside it ("wi-fi" is ``wi AND fi``, as in
    SQLite), or :data:`_IGNORED` if it has none to search for.
    """
    found = 0

    def words(start: int, end: int) -> tuple[str, ...]:
        nonlocal found
        written = []
        for word_start, word_end in _words(query, start, end):
            prefix = word_end < end and query[word_end] == "*"
            term = _term(query[word_start:word_end], profile, prefix)
            if term is None:
                continue
            found += 1
            if found > MAX_QUERY_TERMS:
                raise FullTextQueryError(f"more than {MAX_QUERY_TERMS} words to search for")
            first = "^" if word_start > start and query[word_start - 1] == "^" else ""
            written.append(first + term + ("*" if prefix else ""))
        return tuple(written)

    pos = 0
    while start_match := _NOT_SPACE.search(query, pos):
        pos = start_match.start()
        char = query[pos]
        if char in "()":
            yield char
            pos += 1
            continue
        if char == '"':
            close = query.find('"', pos + 1)
            if close < 0:
                raise FullTextQueryError(f"unbalanced quote at character {pos + 1}")
            phrase = words(pos + 1, close)
            yield _Phrase(phrase) if phrase else _NOTHING
            pos = close + 1
            continue
        end = match.start() if (match := _WORD_END.search(query, pos)) else len(query)
        operator = _OPERATOR.fullmatch(query, pos, end)
        if operator and operator[2] is None:
            yield _Op(operator[1])
        elif operator and operator[1] == "NEAR":  # only NEAR takes "/n": "OR/2" is a word
            yield _Op("NEAR", min(int(operator[2].lstrip("0")[:9] or 0), MAX_NEAR_DISTANCE))
        else:
            column, start = None, pos
            for name, fts_column in columns.items():
                colon = pos + len(name)
                if colon < end and query[colon] == ":" and query[pos:colon].lower() == name.lower():
                    column, start = fts_column, colon + 1
                    if start == end and query.startswith('"', end):
                        raise FullTextQueryError(f"{name}: FTS4 can only filter single words")
                    break
            found_words = words(start, end)
            if not found_words:
                yield _IGNORED
            for i, word in enumerate(found_words):
                yield _Phrase((word,), column if i == 0 else None)
        pos = end


class _Parser:
    """Precedence as in SQLite's enhanced query syntax: NEAR, then NOT, then AND, then OR."""

    def __init__(self, items: Iterator[_Item]) -> None:
        self._items = items
        self._next: _Item | None = next(items, None)
        self._depth = 0

    def parse(self) -> _Node:
        node = _IGNORED if self._next is None else self._or()
        if self._take() is not None:
            raise FullTextQueryError("unbalanced parenthesis: ')' without '('")
        return node

    def _take(self) -> _Item | None:
        item, self._next = self._next, next(self._items, None)
        return item

    def _at(self, name: str) -> bool:
        return isinstance(self._next, _Op) and self._next.name == name

    def _or(self) -> _Node:
        children = [self._and()]
        while self._at("OR"):
            self._take()
            children.append(self._and())
        return _group("OR", children)

    def _operand_next(self) -> bool:
        return not (self._next is None or self._next == ")" or isinstance(self._next, _Op))

    def _and(self) -> _Node:
        children = [self._not()]
        while self._at("AND") or self._operand_next():
            if self._at("AND"):
                self._take()
            children.append(self._not())
        return _group("AND", children)

    def _not(self) -> _Node:
        node = self._near()
        while self._at("NOT"):
            self._take()
            right = self._near()
            if not isinstance(right, _Empty):
                # A left side of only stop words finds no row: there is nothing to subtract from.
                node = _NOTHING if isinstance(node, _Empty) else _Not(node, right)
        return node

    def _near(self) -> _Node:
        operands, distances = [self._operand()], []
        while isinstance(self._next, _Op) and self._next.name == "NEAR":
            distances.append(self._next.distance)
            self._take()
            operands.append(self._operand())
        return _near(operands, distances) if distances else operands[0]

    def _operand(self) -> _Node:
        node = self._primary()
        while node == _IGNORED and self._operand_next():
            node = self._primary()  # SQLite skips it: "a NOT () b" is "a NOT b"
        return node

    def _primary(self) -> _Node:
        item = self._take()
        if item == "(":
            self._depth += 1
            if self._depth > MAX_QUERY_NESTING:
                raise FullTextQueryError(f"more than {MAX_QUERY_NESTING} nested parentheses")
            node = _IGNORED if self._next == ")" else self._or()
            if self._take() != ")":
                raise FullTextQueryError("unbalanced parenthesis: '(' without ')'")
            self._depth -= 1
            return node
        if isinstance(item, _Op):
            raise FullTextQueryError(f"{item.name} needs a search term on each side")
        if item is None or isinstance(item, str):
            where = "at the end" if item is None else "before ')'"
            raise FullTextQueryError(f"a search term is missing {where}")
        return item


def _group(op: str, children: list[_Node]) -> _Node:
    kept: list[_Node] = []
    nothing = False
    for child in children:
        if isinstance(child, _Group) and child.op == op:
            kept.extend(child.children)
        elif isinstance(child, _Empty):
            nothing = nothing or child.matches_nothing
        else:
            kept.append(child)
    if nothing and (op == "AND" or not kept):
        return _NOTHING
    if not kept:
        return _IGNORED
    return kept[0] if len(kept) == 1 else _Group(op, tuple(kept))


def _near(operands: list[_Node], distances: list[int]) -> _Node:
    phrases: list[_Phrase] = []
    kept: list[int] = []
    gap = 0  # an operand left out joins its neighbours by the wider of its two distances
    for i, operand in enumerate(operands):
        gap = max(gap, distances[i - 1] if i else 0)
        if operand == _NOTHING:
            return _NOTHING
        if operand == _IGNORED:
            continue
        if not isinstance(operand, _Phrase):
            raise FullTextQueryError("NEAR needs a word or phrase on each side")
        if phrases:
            kept.append(gap)
        phrases.append(operand)
        gap = 0
    if len(phrases) > 1:
        return _Near(tuple(phrases), tuple(kept))
    return phrases[0] if phrases else _IGNORED


def _tree_depth(node: _Node) -> int:
    """Levels of the tree SQLite builds for node, or more (it balances AND and OR chains)."""
    if isinstance(node, _Group):
        below = max(map(_tree_depth, node.children))
        return math.ceil(math.log2(len(node.children))) + below
    if isinstance(node, _Not):
        return 1 + max(_tree_depth(node.left), _tree_depth(node.right))
    return len(node.phrases) if isinstance(node, _Near) else 1


def _sql(node: _Node) -> str:
    if isinstance(node, _Phrase):
        text = " ".join(node.words)
        if len(node.words) > 1:
            return f'"{text}"'
        return f"{node.column}:{text}" if node.column else text
    if isinstance(node, _Near):
        rest = zip(node.distances, node.phrases[1:], strict=True)
        return _sql(node.phrases[0]) + "".join(f" NEAR/{n} {_sql(p)}" for n, p in rest)
    if isinstance(node, _Group):
        return f" {node.op} ".join(map(_operand_sql, node.children))
    if isinstance(node, _Not):
        return f"{_operand_sql(node.left)} NOT {_operand_sql(node.right)}"
    return MATCH_NOTHING


def _operand_sql(node: _Node) -> str:
    return _sql(node) if isinstance(node, _Phrase) else f"({_sql(node)})"


def match_query(
    terms: str,
    language: str | None,
    ignore_accents: bool,
    *,
    columns: Mapping[str, str] | None = None,
) -> str:
    """The MATCH string that runs the user's FTS query ``terms`` against :func:`index_text` rows.

    ``terms`` is in SQLite's FTS4 query syntax, as Couchbase Lite takes it: words (implicitly
    ANDed), ``AND``, ``OR``, ``NOT``, ``NEAR``/``NEAR/n``, ``"quoted phrases"``, ``prefix*``,
    ``^first``, parentheses, and ``name:word`` for the names in ``columns`` (matched
    case-insensitively; each maps to the FTS table's column to search, as LiteCore names its
    columns after the indexed expressions). Each word is processed as :func:`index_text`
    processes words, prefixes included (LiteCore stems ``swimming*`` to ``swim*``), except that
    a prefix is never a stop word. A bare stop word is left out as SQLite leaves it (``the pool``
    is ``pool``, ``bar NOT the pool`` is ``bar NOT pool``); a quoted phrase of only stop words
    matches nothing; a query with nothing left to search for is :data:`MATCH_NOTHING`. An
    operator left without an operand that way drops out (``pool OR the`` is ``pool``), where
    SQLite would reject the query.

    Raises :class:`FullTextQueryError` for what no FTS query can mean: unbalanced quotes or
    parentheses, an operator without an operand, NEAR beside a parenthesized expression, a
    column filter on a phrase, or a query past the MAX_QUERY_* bounds.
    """
    if not isinstance(terms, str):
        raise FullTextQueryError(f"a full-text query is a string, not {type(terms).__name__}")
    if len(terms) > MAX_QUERY_LENGTH:
        raise FullTextQueryError(f"a full-text query is at most {MAX_QUERY_LENGTH} characters")
    profile = _profile(language, ignore_accents)
    node = _Parser(_items(_nfc(terms), profile, columns or {})).parse()
    if _tree_depth(node) > MAX_QUERY_TREE_DEPTH:
        raise FullTextQueryError("the query is nested too deeply for SQLite's full-text search")
    return _sql(node)


# --- ranking ---------------------------------------------------------------------------------


def rank(matchinfo: bytes) -> float:
    """Couchbase Lite's ``RANK()`` of a row, from FTS4's ``matchinfo(table, 'pcx')`` of it.

    As LiteCore's ``rank`` (SQLite's documented example, every column weighing 1.0): the sum over
    the query's phrases and the table's columns of the phrase's hits in this row's column divided
    by its hits in that column of all rows, added up in phrase-then-column order.
    """
    if len(matchinfo) < 8:
        raise ValueError("matchinfo is too short for its phrase and column counts")
    phrases, columns = struct.unpack_from("=II", matchinfo)
    cells = phrases * columns
    if len(matchinfo) != 4 * (2 + 3 * cells):
        raise ValueError(f"matchinfo of {len(matchinfo)} bytes is not 'pcx' of {phrases}x{columns}")
    values = struct.unpack_from(f"={3 * cells}I", matchinfo, 8)
    score = 0.0
    for hits, all_hits in zip(values[0::3], values[1::3], strict=True):
        if hits:
            if all_hits < hits:
                raise ValueError("matchinfo counts more hits in a row than in all rows")
            score += hits / all_hits
    return score
