"""Structured output enforced while decoding: JSON schemas, json_object, forced tool calls.

The tiny checkpoints are random, so whatever valid structure comes out is the grammar's doing.
The decode loop below is the engine's in miniature: one forward per step for the whole batch,
``apply_constraints`` on the step's logits, argmax, ``accept`` per row.
"""

from __future__ import annotations

import ast
import json
import re
import threading

import jsonschema
import pytest
import torch
import xgrammar as xgr

from sealion_vl.errors import SealionError, StructuredOutputError
from sealion_vl.families.tool_grammar import tool_call_grammar
from sealion_vl.runtime.structured import (
    Constraint,
    ConstraintSpec,
    GrammarCache,
    apply_constraints,
    constraint_for,
)

FAMILIES = ["gemma3", "qwen3_vl", "gemma4"]
MAX_NEW = 120

SCHEMAS = {
    "nested": {
        "type": "object",
        "properties": {
            "person": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 8},
                    "age": {"type": "integer", "minimum": 0, "maximum": 120},
                    "address": {
                        "type": "object",
                        "properties": {"city": {"type": "string", "maxLength": 6}},
                        "required": ["city"],
                    },
                },
                "required": ["name", "age", "address"],
            }
        },
        "required": ["person"],
    },
    "array_min_items": {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"type": "string", "maxLength": 4},
                "minItems": 2,
                "maxItems": 3,
            },
            "scores": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 9},
                "minItems": 1,
                "maxItems": 4,
            },
        },
        "required": ["tags", "scores"],
    },
    "enums": {
        "type": "object",
        "properties": {
            "color": {"enum": ["red", "green", "blue"]},
            "size": {"type": "string", "enum": ["S", "M", "L"]},
            "level": {"enum": [1, 2, 3]},
        },
        "required": ["color", "size", "level"],
    },
    "required_fields": {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 0, "maximum": 999},
            "note": {"type": "string", "maxLength": 5},
            "ok": {"type": "boolean"},
            "extra": {"type": "null"},
        },
        "required": ["id", "ok"],
        "additionalProperties": False,
    },
    "number_bounds": {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": -5, "maximum": 5},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1},
            "temp": {"type": "number", "minimum": -40, "maximum": 60},
        },
        "required": ["n", "ratio", "temp"],
    },
    "pattern": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
            "date": {"type": "string", "pattern": "^20[0-9]{2}-[01][0-9]-[0-3][0-9]$"},
        },
        "required": ["code", "date"],
    },
    "top_level_array": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": 3},
        "minItems": 2,
        "maxItems": 4,
    },
}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 10},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7},
                },
                "required": ["city", "days"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": 8},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 5},
                    "exact": {"type": "boolean"},
                    "langs": {
                        "type": "array",
                        "items": {"enum": ["id", "ms", "th"]},
                        "minItems": 1,
                        "maxItems": 2,
                    },
                },
                "required": ["query", "langs"],
            },
        },
    },
]
TOOL_PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def schema_format(name: str) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": SCHEMAS[name]}}


# ---- the engine's loop in miniature -----------------------------------------------------------


class Tiny:
    """A tiny checkpoint loaded the way the engine loads it, plus its grammar cache."""

    def __init__(self, folder):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model = AutoModelForImageTextToText.from_pretrained(folder).eval()
        self.processor = AutoProcessor.from_pretrained(folder)
        self.tokenizer = self.processor.tokenizer
        stops = self.model.generation_config.eos_token_id
        self.stops = stops if isinstance(stops, list) else [stops]
        self.width = self.model.get_output_embeddings().out_features
        self.cache = GrammarCache(self.tokenizer, self.width, stop_token_ids=self.stops)

    def constraint(self, spec: ConstraintSpec | None) -> Constraint | None:
        return None if spec is None else self.cache.constraint(spec)

    @torch.inference_mode()
    def decode(self, constraints, prompt="Answer in JSON.", max_new=MAX_NEW):
        """Greedy-decode one row per constraint (same prompt); returns (texts, finished)."""
        from transformers import DynamicCache

        msgs = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
        enc = self.processor.apply_chat_template(
            msgs, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        rows = len(constraints)
        ids = enc["input_ids"].repeat(rows, 1)
        mask = enc["attention_mask"].repeat(rows, 1)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True)
        tokens: list[list[int]] = [[] for _ in range(rows)]
        done = [False] * rows
        for _ in range(max_new):
            logits = out.logits[:, -1].float()
            apply_constraints(
                logits, [None if d else c for c, d in zip(constraints, done, strict=True)]
            )
            nxt = logits.argmax(-1)
            for i, t in enumerate(nxt.tolist()):
                if done[i]:
                    continue
                if constraints[i] is not None:
                    assert constraints[i].accept(t), f"row {i}: masked-in token {t} refused"
                if t in self.stops:
                    done[i] = True
                else:
                    tokens[i].append(t)
            if all(done):
                break
            mask = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype)], dim=1)
            out = self.model(
                input_ids=nxt[:, None], attention_mask=mask, past_key_values=cache, use_cache=True
            )
        texts = [self.tokenizer.decode(t, skip_special_tokens=False) for t in tokens]
        return texts, done


_loaded: dict[str, Tiny] = {}


@pytest.fixture(scope="module")
def tiny(checkpoint):
    torch.set_num_threads(min(torch.get_num_threads(), 2))

    def get(kind: str) -> Tiny:
        if kind not in _loaded:
            _loaded[kind] = Tiny(checkpoint(kind))
        return _loaded[kind]

    return get


# ---- JSON schemas and json_object -------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_schemas_decode_to_valid_json(tiny, family):
    m = tiny(family)
    names = list(SCHEMAS)
    constraints = [m.constraint(constraint_for(schema_format(n))) for n in names]
    texts, done = m.decode(constraints)
    for name, text, finished, c in zip(names, texts, done, constraints, strict=True):
        assert finished and c.is_terminated(), f"{family}/{name} did not finish: {text!r}"
        value = json.loads(text)
        jsonschema.validate(value, SCHEMAS[name])


# "Any object" cannot bound a random model's keys the way a schema's maxLength does, so each
# family gets a prompt on which its random model closes the object within the budget.
OBJECT_PROMPTS = {
    "gemma3": "Describe the image.",
    "qwen3_vl": "Return an object.",
    "gemma4": "Return an object.",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_json_object_gives_an_object(tiny, family):
    m = tiny(family)
    c = m.constraint(constraint_for({"type": "json_object"}))
    (text,), (finished,) = m.decode([c], prompt=OBJECT_PROMPTS[family])
    assert finished, text
    assert isinstance(json.loads(text), dict)
    # only an object may open the reply: no bare arrays, strings or numbers
    first = allowed(m.constraint(constraint_for({"type": "json_object"})), m.width)
    assert {m.tokenizer.decode([t])[0] for t in first} == {"{"}


def test_text_format_and_auto_tools_are_unconstrained():
    assert constraint_for(None) is None
    assert constraint_for({"type": "text"}) is None
    assert constraint_for(None, tools=TOOLS, tool_choice="auto", family="gemma4") is None
    assert constraint_for({"type": "text"}, tools=TOOLS, tool_choice="none") is None


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_matches_each_row_alone(tiny, family):
    m = tiny(family)
    specs = [constraint_for(schema_format("enums")), None, constraint_for(schema_format("pattern"))]
    together, done = m.decode([m.constraint(s) for s in specs], max_new=60)
    alone = [m.decode([m.constraint(s)], max_new=60)[0][0] for s in specs]
    assert together == alone
    assert done[0] and done[2]
    jsonschema.validate(json.loads(together[0]), SCHEMAS["enums"])
    jsonschema.validate(json.loads(together[2]), SCHEMAS["pattern"])


# ---- forced tool calls ------------------------------------------------------------------------


def parse_qwen(text: str) -> tuple[str, dict]:
    match = re.fullmatch(r"<tool_call>\n(\{.*\})\n</tool_call>", text, re.S)
    assert match, text
    call = json.loads(match.group(1))
    assert set(call) == {"name", "arguments"}
    return call["name"], call["arguments"]


def parse_gemma4(text: str) -> tuple[str, dict]:
    match = re.fullmatch(r"<\|tool_call>call:(\w+)(\{.*\})<tool_call\|>", text, re.S)
    assert match, text
    # Gemma 4 args -> JSON: parts between <|"|> delimiters alternate code / string content.
    parts = match.group(2).split('<|"|>')
    assert len(parts) % 2 == 1, text
    rebuilt = [
        json.dumps(p) if i % 2 else re.sub(r"([A-Za-z_]\w*):", r'"\1":', p)
        for i, p in enumerate(parts)
    ]
    return match.group(1), json.loads("".join(rebuilt))


def parse_gemma3(text: str) -> tuple[str, dict]:
    match = re.fullmatch(r"```tool_code\n(\w+)\((.*)\)\n```", text, re.S)
    assert match, text
    call = ast.parse(f"{match.group(1)}({match.group(2)})", mode="eval").body
    assert isinstance(call, ast.Call) and not call.args
    return match.group(1), {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}


PARSERS = {"qwen3_vl": parse_qwen, "gemma4": parse_gemma4, "gemma3": parse_gemma3}
CHOICES = {
    "required": "required",
    "named_weather": {"type": "function", "function": {"name": "get_weather"}},
    "named_search": {"type": "function", "function": {"name": "search"}},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_forced_tool_calls_parse_and_validate(tiny, family):
    m = tiny(family)
    labels = list(CHOICES)
    specs = [
        constraint_for(None, tools=TOOLS, tool_choice=CHOICES[k], family=family) for k in labels
    ]
    texts, done = m.decode([m.constraint(s) for s in specs], prompt="What is the weather?")
    for label, text, finished in zip(labels, texts, done, strict=True):
        assert finished, f"{family}/{label}: {text!r}"
        name, args = PARSERS[family](text)
        assert name in TOOL_PARAMS
        if label.startswith("named_"):
            assert name == CHOICES[label]["function"]["name"]
        jsonschema.validate(args, TOOL_PARAMS[name])


ACCEPTED = {
    "qwen3_vl": '<tool_call>\n{"name": "search", "arguments": {"query": "x", "langs": ["id"]}}'
    "\n</tool_call>",
    "gemma4": '<|tool_call>call:search{query:<|"|>x<|"|>,exact:false,langs:[<|"|>th<|"|>]}'
    "<tool_call|>",
    "gemma3": '```tool_code\nsearch(query="x", limit=2, langs=["ms", "id"])\n```',
}
REFUSED = {  # each misses the required "langs", or breaks a bound / enum
    "qwen3_vl": '<tool_call>\n{"name": "search", "arguments": {"query": "x"}}\n</tool_call>',
    "gemma4": '<|tool_call>call:search{query:<|"|>x<|"|>,limit:9,langs:[<|"|>th<|"|>]}<tool_call|>',
    "gemma3": '```tool_code\nsearch(query="x", langs=["vi"])\n```',
}


def matcher(tokenizer, grammar_text: str) -> xgr.GrammarMatcher:
    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=len(tokenizer))
    compiled = xgr.GrammarCompiler(info).compile_structural_tag(grammar_text)
    return xgr.GrammarMatcher(compiled, terminate_without_stop_token=True)


def accepts(tokenizer, grammar_text: str, text: str) -> bool:
    mt = matcher(tokenizer, grammar_text)
    ids = tokenizer.encode(text, add_special_tokens=False)
    return all(mt.accept_token(i) for i in ids) and mt.is_completed()


@pytest.mark.parametrize("family", FAMILIES)
def test_tool_grammar_accepts_and_refuses_texts(tiny, family):
    tok = tiny(family).tokenizer
    grammar = tool_call_grammar(family, TOOLS, "required")
    assert accepts(tok, grammar, ACCEPTED[family])
    assert not accepts(tok, grammar, REFUSED[family])
    named = tool_call_grammar(family, TOOLS, CHOICES["named_weather"])
    assert not accepts(tok, named, ACCEPTED[family])  # the other tool
    # parallel calls: two in a row only when asked for
    sep = "\n" if family == "qwen3_vl" else ""
    two = ACCEPTED[family] + sep + ACCEPTED[family]
    if family == "gemma3":
        body = ACCEPTED[family].split("\n")[1]
        two = f"```tool_code\n{body}\n{body}\n```"
    assert not accepts(tok, grammar, two)
    assert accepts(tok, tool_call_grammar(family, TOOLS, "required", parallel=True), two)


ROUTE = {
    "type": "object",
    "$defs": {
        "loc": {
            "type": "object",
            "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "name": {"type": ["string", "null"]},
            },
            "required": ["lat"],
        }
    },
    "properties": {
        "where": {"$ref": "#/$defs/loc"},
        "mode": {"anyOf": [{"const": "fast"}, {"type": "integer"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["where"],
}
ROUTE_TEXTS = [  # (family, text, accepted): $ref, type lists, anyOf, nested objects, bounds
    ("gemma4", '<|tool_call>call:route{where:{lat:1.5,name:null},mode:<|"|>fast<|"|>}'
     "<tool_call|>", True),
    ("gemma4", '<|tool_call>call:route{where:{lat:-3,name:<|"|>Kuala Lumpur<|"|>},'
     'tags:[<|"|>a<|"|>,<|"|>b<|"|>]}<tool_call|>', True),
    ("gemma4", "<|tool_call>call:route{where:{lat:91}}<tool_call|>", False),
    ("gemma4", "<|tool_call>call:route{mode:3}<tool_call|>", False),
    ("gemma3", '```tool_code\nroute(where={"lat": 1.5, "name": None}, mode="fast")\n```', True),
    ("gemma3", '```tool_code\nroute(where={"lat": 1.5}, mode=7, tags=["x y", "z"])\n```', True),
    ("gemma3", '```tool_code\nroute(where={"lat": 1.5, "name": null})\n```', False),
    ("qwen3_vl", '<tool_call>\n{"name": "route", "arguments": {"where": {"lat": 1.5, '
     '"name": null}, "mode": "fast"}}\n</tool_call>', True),
]  # fmt: skip


@pytest.mark.parametrize(("family", "text", "ok"), ROUTE_TEXTS)
def test_tool_grammar_follows_refs_unions_and_nesting(tiny, family, text, ok):
    tools = [{"type": "function", "function": {"name": "route", "parameters": ROUTE}}]
    assert accepts(tiny(family).tokenizer, tool_call_grammar(family, tools, "required"), text) is ok


def test_gemma4_delimiters_are_single_tokens(tiny):
    """The grammar asks for <|"|> and <|tool_call>, so they are emitted as the model's tokens."""
    tok = tiny("gemma4").tokenizer
    m = matcher(tok, tool_call_grammar("gemma4", TOOLS, CHOICES["named_search"]))
    bitmask = xgr.allocate_token_bitmask(1, len(tok))
    m.fill_next_token_bitmask(bitmask)
    logits = torch.zeros(1, len(tok))
    xgr.apply_token_bitmask_inplace(logits, bitmask)
    assert torch.isfinite(logits[0]).nonzero().flatten().tolist() == [
        tok.convert_tokens_to_ids("<|tool_call>")
    ]


# ---- stop tokens, control tokens, logits wider than the tokenizer ----------------------------


def allowed(c: Constraint, width: int) -> set[int]:
    logits = torch.zeros(1, width)
    apply_constraints(logits, [c])
    return set(torch.isfinite(logits[0]).nonzero().flatten().tolist())


def feed(c: Constraint, tokenizer, text: str) -> None:
    for t in tokenizer.encode(text, add_special_tokens=False):
        assert c.accept(t), (text, t)


@pytest.mark.parametrize("family", FAMILIES)
def test_stop_tokens_only_once_complete(tiny, family):
    m = tiny(family)
    c = m.constraint(constraint_for(schema_format("enums")))
    stops = set(m.stops)
    feed(c, m.tokenizer, '{"color": "red", "size": "S", "level": ')
    ok = allowed(c, m.width)
    assert not ok & stops
    # control tokens (turn markers, media placeholders) never appear inside the reply
    special = set(m.tokenizer.all_special_ids)
    feed(c, m.tokenizer, "2}")
    assert c.is_completed() and not c.is_terminated()
    assert allowed(c, m.width) == stops
    assert c.accept(m.stops[0]) and c.is_terminated()
    assert allowed(c, m.width) == stops  # a finished row kept one step longer: stops only
    assert not c.accept(m.tokenizer.convert_tokens_to_ids("a"))
    d = m.constraint(constraint_for(schema_format("required_fields")))
    feed(d, m.tokenizer, '{"id": 1, "note": "')
    inside_string = allowed(d, m.width)
    assert not inside_string & (special | stops)
    assert m.tokenizer.convert_tokens_to_ids("a") in inside_string


def test_wider_logits_mask_extra_ids(tiny):
    m = tiny("qwen3_vl")
    width = len(m.tokenizer) + 64  # lm_head padded past the tokenizer
    cache = GrammarCache(m.tokenizer, width, stop_token_ids=m.stops)
    c = cache.constraint(constraint_for({"type": "json_object"}))
    logits = torch.zeros(2, width)
    logits[:, len(m.tokenizer) :] = 100.0
    apply_constraints(logits, [c, None])
    assert torch.isinf(logits[0, len(m.tokenizer) :]).all()
    assert (logits[1] >= 0).all()  # the unconstrained row is untouched
    assert int(logits[0].argmax()) == m.tokenizer.convert_tokens_to_ids("{")
    with pytest.raises(ValueError, match="wide"):
        apply_constraints(torch.zeros(1, len(m.tokenizer)), [c])


def test_rows_may_move_between_steps(tiny):
    """The engine re-packs its batch between steps: a constraint follows its request anywhere."""
    m = tiny("gemma3")
    spec = constraint_for(schema_format("enums"))
    a, b = m.constraint(spec), m.constraint(spec)
    torch.manual_seed(0)
    for step in range(12):
        logits = torch.randn(3, m.width)
        row = step % 3
        batch: list = [None, None, None]
        batch[row] = a
        ref = logits[row : row + 1].clone()
        apply_constraints(logits, batch)
        apply_constraints(ref, [b])
        assert torch.equal(logits[row], ref[0])
        t = int(ref.argmax())
        assert a.accept(t) and b.accept(t)
        if t in m.stops:
            break


def test_cache_is_shared_and_thread_safe(tiny):
    m = tiny("qwen3_vl")
    specs = [constraint_for(schema_format(n)) for n in SCHEMAS]
    results: list = []

    def work():
        results.append([m.cache.compile(s) for s in specs])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for per_thread in results[1:]:
        assert all(x is y for x, y in zip(per_thread, results[0], strict=True))
    # equal schemas written differently share one key
    again = json.loads(json.dumps(SCHEMAS["enums"]))
    spec = constraint_for({"type": "json_schema", "json_schema": {"name": "x", "schema": again}})
    assert m.cache.compile(spec) is m.cache.compile(constraint_for(schema_format("enums")))


# ---- bad shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"response_format": "json"}, "response_format"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": ["a"]}}},
            "response_format.json_schema.schema",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 7}}}},
            "response_format.json_schema.schema",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": {"properties": {"a": {"minimum": "0"}}}},
                }
            },
            "response_format.json_schema.schema['properties']['a']['minimum']",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": 3, "schema": {}}}},
            "response_format.json_schema.name",
        ),
        ({"response_format": None, "tools": [], "tool_choice": "required"}, "tools"),
        ({"response_format": None, "tools": TOOLS, "tool_choice": "always"}, "tool_choice"),
        (
            {
                "response_format": None,
                "tools": TOOLS,
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "tool_choice.function.name",
        ),
        (
            {"response_format": None, "tools": [{"name": "f"}], "tool_choice": "required"},
            "tools[0]",
        ),
        (
            {
                "response_format": None,
                "tools": [{"type": "function", "function": {"parameters": {}}}],
                "tool_choice": "required",
            },
            "tools[0].function.name",
        ),
        ({"response_format": None, "tools": TOOLS, "tool_choice": "required"}, "family"),
    ],
)
def test_bad_shapes_name_the_field(kwargs, field):
    kwargs = dict(kwargs)
    family = "gemma4" if "tool_choice" in kwargs and field != "family" else None
    with pytest.raises(StructuredOutputError) as err:
        constraint_for(kwargs.pop("response_format"), family=family, **kwargs)
    message = str(err.value)
    assert message.startswith(field) and message[len(field)] in ":[", message
    assert isinstance(err.value, ValueError) and isinstance(err.value, SealionError)


def test_gemma3_needs_identifier_names():
    tools = [{"type": "function", "function": {"name": "get-time", "parameters": {}}}]
    with pytest.raises(StructuredOutputError, match="identifiers"):
        constraint_for(None, tools=tools, tool_choice="required", family="gemma3")
    with pytest.raises(StructuredOutputError, match="family"):
        constraint_for(None, tools=TOOLS, tool_choice="required", family="llama")
