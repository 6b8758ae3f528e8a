"""Grid encoders: turn an ARC grid into the text a language model reads and writes, and parse it back.

Encoders compose by wrapping, as in the seed. For the grid ``[[1, 2, 3], [4, 5, 6]]``::

    MinimalGridEncoder()                                      123\\n456
    RowNumberEncoder(MinimalGridEncoder())                    1 123\\n2 456
    ReplaceNumberEncoder(MinimalGridEncoder())                ò÷û\\nąćď
    GridCodeBlockEncoder(MinimalGridEncoder())                ```grid\\n123\\n456\\n```
    GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))  ```grid shape: 2x3\\n1 123\\n2 456\\n```

There are two levels, and the class hierarchy mirrors them:

- :class:`RowEncoder` writes one line per grid row (:class:`MinimalGridEncoder`) or rewrites the lines of the row
  encoder it wraps (:class:`RowNumberEncoder`, :class:`ReplaceNumberEncoder`). Because a row wrapper only sees its
  inner encoder's lines, ``RowNumberEncoder(ReplaceNumberEncoder(...))`` keeps row numbers as digits and turns only
  cells into symbols.
- :class:`BlockEncoder` puts the lines of a row encoder inside a fenced code block (:class:`GridCodeBlockEncoder`,
  :class:`GridShapeEncoder`); its header is never touched by the row level.

``decode`` is strict, because a model's answer that is not exactly a grid counts as unanswered: it raises
:class:`GridParseError` on anything but the exact text ``encode`` would produce, apart from whitespace around the
whole text. Build encoders directly, with :func:`create_grid_encoder` from the seed's string form or a composition
name, or from a Hydra config (nested ``_target_``, :func:`encoder_config`). The compositions are listed once, in
:data:`ENCODER_COMPOSITIONS`; the entry points offer each as the option ``encoder=<name>`` (registered in Hydra's
ConfigStore by :func:`arc_exp.schemas.register`), and ``encoder=spec "encoder.spec='<seed form>'"`` builds any other.
"""
from __future__ import annotations

import ast
import re
from abc import ABC, abstractmethod
from typing import Mapping, Sequence, Union

from arc_exp.data.grid import MAX_SIDE, Grid, InvalidGridError, validate_grid


class GridParseError(ValueError):
    """Text that is not a grid in the encoder's format (the prediction counts as unanswered)."""


class InvalidDecodedGridError(GridParseError):
    """The text has the encoder's form, but its rows are no ARC grid (not rectangular, or larger than 30x30)."""


class EncoderSpecError(ValueError):
    """An encoder spec (string form, composition name or nesting) that cannot be built."""


class UnknownEncoderError(EncoderSpecError):
    """An encoder class or composition name that does not exist; the message lists the known ones."""


# Cell value -> its digit; a dict (not a string index) so a negative or too-large value fails instead of wrapping.
_CELL_DIGIT = {value: str(value) for value in range(10)}
_ASCII_DIGIT = re.compile("[0-9]")


class GridEncoder(ABC):
    """Turns a grid into text and back. ``repr`` is the seed's string form; equal forms mean equal encoders."""

    @abstractmethod
    def encode(self, grid: Grid) -> str:
        """The text of a valid grid (see :func:`arc_exp.data.grid.validate_grid`)."""

    @abstractmethod
    def decode(self, text: str) -> Grid:
        """The grid written in ``text``; raises :class:`GridParseError` if it is not exactly one."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GridEncoder) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


class RowEncoder(GridEncoder):
    """An encoder that writes one line per grid row; row wrappers work on these lines."""

    @abstractmethod
    def encode_rows(self, grid: Grid) -> list[str]:
        """One line of text per grid row."""

    @abstractmethod
    def decode_rows(self, lines: list[str]) -> Grid:
        """The rows written in ``lines`` (one per row), not yet checked to be rectangular."""

    def encode(self, grid: Grid) -> str:
        return "\n".join(self.encode_rows(grid))

    def decode(self, text: str) -> Grid:
        return _finish(self.decode_rows(_split_lines(text.strip())))


class _RowWrapper(RowEncoder):
    """A row encoder that rewrites the lines of another row encoder."""

    def __init__(self, inner: RowEncoder):
        self.inner = _require_row_encoder(type(self).__name__, inner)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


class MinimalGridEncoder(RowEncoder):
    """Rows of digits, one line per row.

    >>> MinimalGridEncoder().encode([[1, 2, 3], [4, 5, 6]])
    '123\\n456'
    """

    def encode_rows(self, grid: Grid) -> list[str]:
        try:
            return ["".join([_CELL_DIGIT[value] for value in row]) for row in grid]
        except (KeyError, TypeError):
            validate_grid(grid)  # raises InvalidGridError naming the bad cell
            raise

    def decode_rows(self, lines: list[str]) -> Grid:
        rows = []
        for number, line in enumerate(lines, start=1):
            # isascii() first: str.isdigit() also accepts digits such as '²' or '٣'.
            if not (line.isascii() and line.isdigit()):
                raise GridParseError(_bad_line_message(number, line, "a digit 0-9"))
            rows.append([byte - 48 for byte in line.encode("ascii")])
        return rows


class RowNumberEncoder(_RowWrapper):
    """Prefixes each line of ``inner`` with its 1-based row number and a space.

    >>> RowNumberEncoder(MinimalGridEncoder()).encode([[1, 2, 3], [4, 5, 6]])
    '1 123\\n2 456'
    """

    def encode_rows(self, grid: Grid) -> list[str]:
        return [f"{number} {line}" for number, line in enumerate(self.inner.encode_rows(grid), start=1)]

    def decode_rows(self, lines: list[str]) -> Grid:
        stripped = []
        for number, line in enumerate(lines, start=1):
            prefix = f"{number} "
            if not line.startswith(prefix):
                found = line.split(" ", 1)[0]
                raise GridParseError(f"row {number} must start with {prefix!r}, found {_clip(found)!r}")
            stripped.append(line[len(prefix):])
        return self.inner.decode_rows(stripped)


class ReplaceNumberEncoder(_RowWrapper):
    """Replaces the digits in the lines of ``inner`` by rare single-token symbols: 0123456789 -> ñò÷ûąćďęĚĞ.

    >>> ReplaceNumberEncoder(MinimalGridEncoder()).encode([[1, 2, 3], [4, 5, 6]])
    'ò÷û\\nąćď'
    """

    SYMBOLS = "ñò÷ûąćďęĚĞ"
    _TO_SYMBOL = str.maketrans("0123456789", SYMBOLS)
    _TO_DIGIT = str.maketrans(SYMBOLS, "0123456789")

    def encode_rows(self, grid: Grid) -> list[str]:
        return [line.translate(self._TO_SYMBOL) for line in self.inner.encode_rows(grid)]

    def decode_rows(self, lines: list[str]) -> Grid:
        for number, line in enumerate(lines, start=1):
            # A plain digit is a stray symbol here; translating back would otherwise hide it.
            digit = _ASCII_DIGIT.search(line)
            if digit:
                raise GridParseError(f"row {number} holds the digit {digit.group()!r} where a symbol of "
                                     f"{self.SYMBOLS!r} is expected: {_clip(line)!r}")
        return self.inner.decode_rows([line.translate(self._TO_DIGIT) for line in lines])


class BlockEncoder(GridEncoder):
    """Writes the lines of a row encoder inside a fenced code block: ``header``, the lines, then a closing fence."""

    def __init__(self, inner: RowEncoder):
        self.inner = _require_row_encoder(type(self).__name__, inner)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    @abstractmethod
    def header(self, grid: Grid) -> str:
        """The opening line of the block, e.g. ``'```grid'``."""

    @abstractmethod
    def check_header(self, header: str, grid: Grid) -> None:
        """Raise :class:`GridParseError` if ``header`` is not the header of the decoded ``grid``."""

    def encode(self, grid: Grid) -> str:
        return "\n".join([self.header(grid), *self.inner.encode_rows(grid), "```"])

    def decode(self, text: str) -> Grid:
        lines = _split_lines(text.strip(), extra=2)
        if len(lines) < 3:
            raise GridParseError(f"expected a header line, grid rows and a closing '```', got {len(lines)} line(s)")
        if lines[-1] != "```":
            raise GridParseError(f"missing closing fence '```', the last line is {_clip(lines[-1])!r}")
        if not lines[0].startswith("```"):
            raise GridParseError(f"missing opening fence, the first line is {_clip(lines[0])!r}")
        grid = _finish(self.inner.decode_rows(lines[1:-1]))
        self.check_header(lines[0], grid)
        return grid


class GridCodeBlockEncoder(BlockEncoder):
    """The rows of ``inner`` inside a ```` ```grid ```` code block.

    >>> GridCodeBlockEncoder(MinimalGridEncoder()).encode([[1, 2, 3], [4, 5, 6]])
    '```grid\\n123\\n456\\n```'
    """

    def header(self, grid: Grid) -> str:
        return "```grid"

    def check_header(self, header: str, grid: Grid) -> None:
        if header != "```grid":
            raise GridParseError(f"expected the header '```grid', got {_clip(header)!r}")


class GridShapeEncoder(BlockEncoder):
    """The rows of ``inner`` inside a code block whose header gives the shape, rows x columns.

    >>> GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder())).encode([[1, 2, 3], [4, 5, 6]])
    '```grid shape: 2x3\\n1 123\\n2 456\\n```'
    """

    _HEADER = re.compile(r"```grid shape: ([1-9][0-9]?)x([1-9][0-9]?)")

    def header(self, grid: Grid) -> str:
        return f"```grid shape: {len(grid)}x{len(grid[0])}"

    def check_header(self, header: str, grid: Grid) -> None:
        match = self._HEADER.fullmatch(header)
        if match is None:
            raise GridParseError(f"expected a header like '```grid shape: 2x3', got {_clip(header)!r}")
        stated = (int(match.group(1)), int(match.group(2)))
        actual = (len(grid), len(grid[0]))
        if stated != actual:
            raise GridParseError(f"the header states shape {stated[0]}x{stated[1]}, "
                                 f"the rows are {actual[0]}x{actual[1]}")


ENCODER_CLASSES: dict[str, type[GridEncoder]] = {
    cls.__name__: cls
    for cls in (MinimalGridEncoder, RowNumberEncoder, ReplaceNumberEncoder, GridCodeBlockEncoder, GridShapeEncoder)
}

# The useful compositions, by their option name (``encoder=<name>``): the one list of them.
ENCODER_COMPOSITIONS: dict[str, str] = {
    "minimal": "MinimalGridEncoder()",
    "row_number": "RowNumberEncoder(MinimalGridEncoder())",
    "replace_number": "ReplaceNumberEncoder(MinimalGridEncoder())",
    "grid_shape": "GridShapeEncoder(MinimalGridEncoder())",
    "grid_shape_row_number": "GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))",
    "grid_shape_row_number_replace_number":
        "GridShapeEncoder(RowNumberEncoder(ReplaceNumberEncoder(MinimalGridEncoder())))",
    "code_block": "GridCodeBlockEncoder(MinimalGridEncoder())",
    "code_block_row_number": "GridCodeBlockEncoder(RowNumberEncoder(MinimalGridEncoder()))",
    "code_block_replace_number": "GridCodeBlockEncoder(ReplaceNumberEncoder(MinimalGridEncoder()))",
}

DEFAULT_ENCODER = "grid_shape_row_number"


def create_grid_encoder(spec: Union[str, GridEncoder]) -> GridEncoder:
    """Build an encoder from a composition name or the seed's string form (parsed with ``ast``, never ``eval``).

    >>> create_grid_encoder("grid_shape_row_number")
    GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))
    >>> create_grid_encoder("RowNumberEncoder(inner=MinimalGridEncoder())")
    RowNumberEncoder(MinimalGridEncoder())

    An encoder instance is returned as is. Raises :class:`UnknownEncoderError` for a name that is neither a class nor
    a composition, :class:`EncoderSpecError` for any other spec that cannot be built.
    """
    if isinstance(spec, GridEncoder):
        return spec
    if not isinstance(spec, str):
        raise EncoderSpecError(f"an encoder spec must be a string or a GridEncoder, got {type(spec).__name__}")
    text = spec.strip()
    if text in ENCODER_COMPOSITIONS:
        text = ENCODER_COMPOSITIONS[text]
    elif text.isidentifier() and text not in ENCODER_CLASSES:
        raise UnknownEncoderError(f"unknown encoder {text!r}; {_known()}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise EncoderSpecError(f"cannot parse encoder spec {spec!r}: {error.msg}; {_known()}") from None
    return _build(tree.body, spec)


def encoder_config(encoder: GridEncoder) -> dict:
    """The Hydra config that builds ``encoder``: one nested ``_target_`` per class, as a run's config records it.

    >>> config = encoder_config(create_grid_encoder("row_number"))
    >>> config["_target_"], config["inner"]
    ('arc_exp.data.encoders.RowNumberEncoder', {'_target_': 'arc_exp.data.encoders.MinimalGridEncoder'})
    """
    config = {"_target_": f"{type(encoder).__module__}.{type(encoder).__qualname__}"}
    if isinstance(encoder, (_RowWrapper, BlockEncoder)):
        config["inner"] = encoder_config(encoder.inner)
    return config


# where encoder configs name the classes: arc_exp.encoders in runs and checkpoints written before arc_exp/ was grouped
# by pipeline stage
ENCODER_MODULES = ("arc_exp.data.encoders", "arc_exp.encoders")


def encoder_from_config(config: Mapping) -> GridEncoder:
    """The encoder a recorded config builds (a run's or a checkpoint's ``encoder``): the nested ``_target_`` form of
    :func:`encoder_config`, or ``create_grid_encoder`` with a ``spec``, under this module's name or its old one.

    >>> encoder_from_config({"_target_": "arc_exp.encoders.create_grid_encoder", "spec": "minimal"})
    MinimalGridEncoder()

    A class outside this module raises :class:`EncoderSpecError` naming it (a config of a project's own encoder
    class is built by Hydra at the entry point, not here).
    """
    target = str(config.get("_target_", ""))
    module, _, name = target.rpartition(".")
    if module not in ENCODER_MODULES or (name not in ENCODER_CLASSES and name != "create_grid_encoder"):
        raise EncoderSpecError(f"encoder config names {target or 'no _target_'!r}, not an encoder of "
                               f"{ENCODER_MODULES[0]}; {_known()}")
    arguments = {key: encoder_from_config(value) if isinstance(value, Mapping) else value
                 for key, value in config.items() if key != "_target_"}
    try:
        if name == "create_grid_encoder":
            return create_grid_encoder(**arguments)
        return ENCODER_CLASSES[name](**arguments)
    except TypeError as error:  # wrong names of arguments
        raise EncoderSpecError(f"encoder config {dict(config)!r}: {error}") from None


def _build(node: ast.AST, spec: str) -> object:
    """Build one node of a parsed spec: a call of a known encoder class, or a literal argument."""
    if isinstance(node, ast.Name):  # "MinimalGridEncoder" without parentheses
        node = ast.Call(func=node, args=[], keywords=[])
    if not isinstance(node, ast.Call):
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise EncoderSpecError(f"encoder spec {spec!r}: unexpected {ast.unparse(node)!r}; {_known()}") from None
    if not isinstance(node.func, ast.Name):
        raise EncoderSpecError(f"encoder spec {spec!r}: {ast.unparse(node.func)!r} is not an encoder class name")
    name = node.func.id
    if name not in ENCODER_CLASSES:
        raise UnknownEncoderError(f"encoder spec {spec!r}: unknown encoder {name!r}; {_known()}")
    args = [_build(arg, spec) for arg in node.args]
    kwargs = {keyword.arg: _build(keyword.value, spec) for keyword in node.keywords}
    try:
        return ENCODER_CLASSES[name](*args, **kwargs)
    except (TypeError, EncoderSpecError) as error:  # wrong number or names of arguments, a wrapper around a block
        raise EncoderSpecError(f"encoder spec {spec!r}: {error}") from None


def _known() -> str:
    return (f"known encoder classes: {', '.join(ENCODER_CLASSES)}; "
            f"known compositions: {', '.join(ENCODER_COMPOSITIONS)}")


def _require_row_encoder(wrapper: str, inner: object) -> RowEncoder:
    if not isinstance(inner, RowEncoder):
        row_encoders = ", ".join(name for name, cls in ENCODER_CLASSES.items() if issubclass(cls, RowEncoder))
        raise EncoderSpecError(f"{wrapper} wraps a row encoder ({row_encoders}), got {inner!r}")
    return inner


def _split_lines(text: str, extra: int = 0) -> list[str]:
    """The lines of ``text``; refuses early more than 30 rows (plus ``extra`` fence lines) so long garbage is cheap."""
    if not text:
        raise GridParseError("empty text, expected a grid")
    lines = text.split("\n")
    if len(lines) > MAX_SIDE + extra:
        raise GridParseError(f"{len(lines) - extra} rows, a grid has at most {MAX_SIDE}")
    return lines


def _finish(rows: Sequence[list[int]]) -> Grid:
    """Check decoded rows form an ARC grid (rectangular, 1x1 to 30x30)."""
    try:
        return validate_grid(rows, "decoded grid")
    except InvalidGridError as error:
        raise InvalidDecodedGridError(str(error)) from None


def _bad_line_message(number: int, line: str, expected: str) -> str:
    if not line:
        return f"row {number} is empty"
    column, char = next((i, c) for i, c in enumerate(line, start=1) if not ("0" <= c <= "9"))
    return f"row {number}, column {column}: unexpected {char!r}, expected {expected}: {_clip(line)!r}"


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
