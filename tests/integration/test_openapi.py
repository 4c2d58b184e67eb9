"""
The OpenAPI document (web/openapi.json, served at /openapi.json) and the API
reference page (/docs):

  1. the document is structurally valid OpenAPI 3.1 (a meta-check written
     here, every $ref resolves, every schema is a valid JSON Schema 2020-12
     and every example validates against its schema);
  2. it documents exactly the routes the node answers: every route label of
     GET / (and of API_ROUTES in src/api.h) has its paths, and every
     documented path answers OPTIONS with exactly the documented methods;
  3. real answers match it: every operation is driven against a real node
     (successes and the errors a client can provoke, 507 on a node at
     --max-keys) and each answer's status, Content-Type, headers and JSON
     body must be the documented ones;
  4. /docs is an HTML page that loads only same-origin resources (no inline
     script or style: the CSP forbids them) and its script and style are
     served.
"""
import html.parser
import json
import re
import urllib.parse

import jsonschema
import requests

from skvtest import REPO, TMUL, request_bytes

SPEC_PATH = REPO / "web" / "openapi.json"
SPEC = json.loads(SPEC_PATH.read_text())
METHODS = ("get", "head", "put", "post", "delete", "options", "patch", "trace")
TIMEOUT = 10 * TMUL


# ---- helpers ---------------------------------------------------------------------------------


def resolve(node):
    """Follows a local $ref chain ("#/components/...") to the object."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = SPEC
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        seen += 1
        assert seen < 10, ref
    return node


def validator_for(schema):
    """A Draft 2020-12 validator for a schema of the document: the schema is
    wrapped in a root that carries the components, so "#/components/..."
    references resolve (works with jsonschema 4.10 and later)."""
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "allOf": [schema],
            "components": SPEC["components"]}
    return jsonschema.Draft202012Validator(root)


def validate(instance, schema, what):
    errors = sorted(validator_for(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, f"{what}: {errors[0].message} at {list(errors[0].absolute_path)}\ninstance: {instance!r:.600}"


def operations():
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def api_route_labels():
    text = (REPO / "src" / "api.h").read_text()
    block = text[text.index("#define API_ROUTES(X)"):text.index("enum api_route")]
    labels = re.findall(r'X\(\s*\w+\s*,\s*"([^"]*)"\s*\)', block)
    assert labels, "no API_ROUTES labels found in src/api.h"
    return [label for label in labels if label not in ("unmatched", "invalid")]


def example_of(param):
    param = resolve(param)
    if "example" in param:
        return param["example"]
    schema = param.get("schema", {})
    return schema.get("default", schema.get("examples", ["x"])[0])


def path_params(path, op=None):
    params = {}
    for p in SPEC["paths"][path].get("parameters", []) + (op or {}).get("parameters", []):
        p = resolve(p)
        if p["in"] == "path":
            params[p["name"]] = example_of(p)
    return params


def fill(path, values):
    def sub(m):
        return urllib.parse.quote(str(values[m.group(1)]), safe="/:@")
    return re.sub(r"\{([^}]+)\}", sub, path)


# ---- 1. structure ---------------------------------------------------------------------------

# A minimal meta-schema for OpenAPI 3.1 (the official one is not packaged in
# Debian): the objects and members this document uses, their types and
# required members, and no unknown members where the specification allows
# only its own (plus x- extensions).
NAME_RE = "^[a-zA-Z0-9._-]+$"
EXT = {"^x-": {}}
OAS_META = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
        "info": {"$ref": "#/$defs/info"},
        "jsonSchemaDialect": {"type": "string"},
        "servers": {"type": "array", "items": {"$ref": "#/$defs/server"}},
        "paths": {"type": "object", "propertyNames": {"pattern": "^/"},
                  "additionalProperties": {"$ref": "#/$defs/pathItem"}},
        "components": {"$ref": "#/$defs/components"},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
        "webhooks": {"type": "object"},
        "security": {"type": "array"},
        "externalDocs": {"type": "object"},
    },
    "patternProperties": EXT,
    "additionalProperties": False,
    "$defs": {
        "info": {"type": "object", "required": ["title", "version"], "patternProperties": EXT, "additionalProperties": False,
                 "properties": {"title": {"type": "string"}, "version": {"type": "string"}, "summary": {"type": "string"},
                                "description": {"type": "string"}, "termsOfService": {"type": "string"},
                                "contact": {"type": "object"}, "license": {"type": "object", "required": ["name"]}}},
        "server": {"type": "object", "required": ["url"], "patternProperties": EXT, "additionalProperties": False,
                   "properties": {"url": {"type": "string"}, "description": {"type": "string"}, "variables": {"type": "object"}}},
        "tag": {"type": "object", "required": ["name"], "patternProperties": EXT, "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "description": {"type": "string"}, "externalDocs": {"type": "object"}}},
        "ref": {"type": "object", "required": ["$ref"], "properties": {"$ref": {"type": "string", "pattern": "^#/"},
                                                                        "summary": {"type": "string"}, "description": {"type": "string"}},
                "additionalProperties": False},
        "pathItem": {"type": "object", "patternProperties": EXT, "additionalProperties": False,
                     "properties": {"$ref": {"type": "string"}, "summary": {"type": "string"}, "description": {"type": "string"},
                                    "servers": {"type": "array", "items": {"$ref": "#/$defs/server"}},
                                    "parameters": {"$ref": "#/$defs/parameterList"},
                                    **{m: {"$ref": "#/$defs/operation"} for m in METHODS}}},
        "operation": {"type": "object", "required": ["responses"], "patternProperties": EXT, "additionalProperties": False,
                      "properties": {"tags": {"type": "array", "items": {"type": "string"}}, "summary": {"type": "string"},
                                     "description": {"type": "string"}, "externalDocs": {"type": "object"},
                                     "operationId": {"type": "string"}, "parameters": {"$ref": "#/$defs/parameterList"},
                                     "requestBody": {"oneOf": [{"$ref": "#/$defs/ref"}, {"$ref": "#/$defs/requestBody"}]},
                                     "responses": {"$ref": "#/$defs/responses"}, "callbacks": {"type": "object"},
                                     "deprecated": {"type": "boolean"}, "security": {"type": "array"},
                                     "servers": {"type": "array"}}},
        "parameterList": {"type": "array", "items": {"oneOf": [{"$ref": "#/$defs/ref"}, {"$ref": "#/$defs/parameter"}]}},
        "parameter": {"type": "object", "required": ["name", "in"], "patternProperties": EXT, "additionalProperties": False,
                      "properties": {"name": {"type": "string"}, "in": {"enum": ["query", "header", "path", "cookie"]},
                                     "description": {"type": "string"}, "required": {"type": "boolean"},
                                     "deprecated": {"type": "boolean"}, "allowEmptyValue": {"type": "boolean"},
                                     "style": {"type": "string"}, "explode": {"type": "boolean"},
                                     "allowReserved": {"type": "boolean"}, "schema": {"$ref": "#/$defs/schema"},
                                     "example": {}, "examples": {"$ref": "#/$defs/examples"},
                                     "content": {"$ref": "#/$defs/content"}},
                      "oneOf": [{"required": ["schema"]}, {"required": ["content"]}],
                      "if": {"properties": {"in": {"const": "path"}}},
                      "then": {"required": ["required"], "properties": {"required": {"const": True}}}},
        "requestBody": {"type": "object", "required": ["content"], "patternProperties": EXT, "additionalProperties": False,
                        "properties": {"description": {"type": "string"}, "content": {"$ref": "#/$defs/content"},
                                       "required": {"type": "boolean"}}},
        "content": {"type": "object", "additionalProperties": {"$ref": "#/$defs/mediaType"}},
        "mediaType": {"type": "object", "patternProperties": EXT, "additionalProperties": False,
                      "properties": {"schema": {"$ref": "#/$defs/schema"}, "example": {}, "examples": {"$ref": "#/$defs/examples"},
                                     "encoding": {"type": "object"}},
                      "not": {"required": ["example", "examples"]}},
        "examples": {"type": "object", "additionalProperties": {"oneOf": [
            {"$ref": "#/$defs/ref"},
            {"type": "object", "patternProperties": EXT, "additionalProperties": False,
             "properties": {"summary": {"type": "string"}, "description": {"type": "string"}, "value": {},
                            "externalValue": {"type": "string"}}}]}},
        "responses": {"type": "object", "minProperties": 1, "patternProperties": {**EXT, "^[1-5](XX|[0-9]{2})$": {"$ref": "#/$defs/responseOrRef"}},
                      "properties": {"default": {"$ref": "#/$defs/responseOrRef"}}, "additionalProperties": False},
        "responseOrRef": {"oneOf": [{"$ref": "#/$defs/ref"}, {"$ref": "#/$defs/response"}]},
        "response": {"type": "object", "required": ["description"], "patternProperties": EXT, "additionalProperties": False,
                     "properties": {"description": {"type": "string"}, "content": {"$ref": "#/$defs/content"},
                                    "links": {"type": "object"},
                                    "headers": {"type": "object", "additionalProperties": {"oneOf": [{"$ref": "#/$defs/ref"}, {"$ref": "#/$defs/header"}]}}}},
        "header": {"type": "object", "patternProperties": EXT, "additionalProperties": False,
                   "properties": {"description": {"type": "string"}, "required": {"type": "boolean"},
                                  "deprecated": {"type": "boolean"}, "schema": {"$ref": "#/$defs/schema"},
                                  "example": {}, "examples": {"$ref": "#/$defs/examples"}, "style": {"const": "simple"},
                                  "explode": {"type": "boolean"}, "content": {"$ref": "#/$defs/content"}}},
        "schema": {"type": ["object", "boolean"]},
        "components": {"type": "object", "patternProperties": EXT, "additionalProperties": False,
                       "properties": {
                           "schemas": {"type": "object", "propertyNames": {"pattern": NAME_RE}, "additionalProperties": {"$ref": "#/$defs/schema"}},
                           "responses": {"type": "object", "propertyNames": {"pattern": NAME_RE}, "additionalProperties": {"$ref": "#/$defs/responseOrRef"}},
                           "parameters": {"type": "object", "propertyNames": {"pattern": NAME_RE},
                                          "additionalProperties": {"oneOf": [{"$ref": "#/$defs/ref"}, {"$ref": "#/$defs/parameter"}]}},
                           "headers": {"type": "object", "propertyNames": {"pattern": NAME_RE},
                                       "additionalProperties": {"oneOf": [{"$ref": "#/$defs/ref"}, {"$ref": "#/$defs/header"}]}},
                           "examples": {"type": "object"}, "requestBodies": {"type": "object"},
                           "securitySchemes": {"type": "object"}, "links": {"type": "object"},
                           "callbacks": {"type": "object"}, "pathItems": {"type": "object"}}},
    },
}


def walk(node, path=()):
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


def test_document_is_structurally_valid_openapi_31():
    jsonschema.Draft202012Validator.check_schema(OAS_META)
    errors = list(jsonschema.Draft202012Validator(OAS_META).iter_errors(SPEC))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])

    # Every $ref resolves.
    for where, node in walk(SPEC):
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            target = SPEC
            for part in node["$ref"][2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                assert isinstance(target, dict) and part in target, f"unresolved $ref {node['$ref']} at {where}"
                target = target[part]

    # Unique operationIds, declared tags, path templates matched by path parameters.
    tags = {t["name"] for t in SPEC["tags"]}
    op_ids = [op["operationId"] for _, _, op in operations()]
    assert len(op_ids) == len(set(op_ids)), "duplicate operationId"
    for path, method, op in operations():
        assert op.get("tags") and set(op["tags"]) <= tags, (path, method)
        assert op.get("summary"), (path, method)
        params = [resolve(p) for p in SPEC["paths"][path].get("parameters", []) + op.get("parameters", [])]
        keys = [(p["name"].lower() if p["in"] == "header" else p["name"], p["in"]) for p in params]
        assert len(keys) == len(set(keys)), f"duplicate parameter in {method} {path}"
        templated = set(re.findall(r"\{([^}]+)\}", path))
        assert {p["name"] for p in params if p["in"] == "path"} == templated, (path, method)
        assert "default" in op["responses"], f"{method} {path}: no default response"
        if method in ("get", "head", "delete", "options"):
            assert "requestBody" not in op, (path, method)
    # Path templates that differ only in parameter names would be ambiguous.
    shapes = [re.sub(r"\{[^}]+\}", "{}", p) for p in SPEC["paths"]]
    assert len(shapes) == len(set(shapes))

    # Schemas are valid JSON Schema 2020-12 and every example fits its schema.
    for name, schema in SPEC["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
        for i, example in enumerate(schema.get("examples", [])):
            validate(example, {"$ref": f"#/components/schemas/{name}"}, f"example {i} of schema {name}")
    checked = 0
    for where, node in walk(SPEC):
        if not (isinstance(node, dict) and isinstance(node.get("schema"), dict)):
            continue
        schema = node["schema"]
        jsonschema.Draft202012Validator.check_schema(schema)
        samples = []
        if "example" in node:
            samples.append(node["example"])
        for ex in (node.get("examples") or {}).values():
            samples.append(resolve(ex)["value"])
        for sample in samples:
            validate(sample, schema, f"example at {'/'.join(map(str, where))}")
            checked += 1
    assert checked > 100, checked

    # The documented error codes exist in the sources, and the common
    # responses cover the connection-level statuses.
    common = SPEC["x-shardkv-common-responses"]
    assert {"400", "405", "408", "413", "414", "431", "501", "505"} <= set(common)
    src = "".join(p.read_text() for p in (REPO / "src").glob("*.c"))
    for code in all_documented_codes():
        assert re.search(rf"\b{code}\b", src), f"documented error code {code} does not occur in src/"


def all_documented_codes():
    codes = set()
    for _, node in walk(SPEC):
        if isinstance(node, dict) and isinstance(node.get("properties"), dict):
            err = node["properties"].get("error")
            if isinstance(err, dict):
                code = err.get("properties", {}).get("code", {})
                codes.update(code.get("enum", []))
                if "const" in code:
                    codes.add(code["const"])
    assert len(codes) > 40
    return codes


def test_document_is_served_at_openapi_json(server):
    r = requests.get(server.url("/openapi.json"), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == SPEC, "the binary serves another openapi.json than web/openapi.json (rebuild)"
    etag = r.headers["ETag"]
    r2 = requests.get(server.url("/openapi.json"), headers={"If-None-Match": etag}, timeout=TIMEOUT)
    assert r2.status_code == 304 and r2.content == b""


# ---- 2. routes ------------------------------------------------------------------------------


def test_every_route_is_documented_and_every_documented_path_is_answered(server):
    labels = requests.get(server.url("/"), timeout=TIMEOUT).json()["routes"]
    assert sorted(labels) == sorted(api_route_labels()), "GET / and API_ROUTES in src/api.h disagree"
    documented = {}
    for path, item in SPEC["paths"].items():
        documented.setdefault(item.get("x-shardkv-route"), []).append(path)
    assert set(documented) == set(labels), f"undocumented: {set(labels) - set(documented)}; unknown: {set(documented) - set(labels)}"
    for label in labels:   # a route's label is also its main path (more paths may share it: /incr, /decr)
        assert SPEC["paths"].get(label, {}).get("x-shardkv-route") == label, f"route {label} has no path of its own"

    # Each documented path is answered, with exactly the documented methods.
    for path, item in SPEC["paths"].items():
        url = server.url(fill(path, path_params(path)))
        methods = {m.upper() for m in METHODS if m in item}
        r = requests.options(url, timeout=TIMEOUT)
        assert r.status_code == 204, (path, r.status_code, r.text)
        allow = {m.strip() for m in r.headers["Allow"].split(",")}
        assert allow == methods, f"{path}: the node allows {sorted(allow)}, the document lists {sorted(methods)}"
        assert "options" in item and "Allow" in resolve(item["options"]["responses"]["204"])["headers"]


# ---- 3. answers match the document ------------------------------------------------------------


class Driver:
    """Sends requests to a node and checks every answer against the document."""

    def __init__(self, server):
        self.server = server
        self.hits = {}          # (path, method) -> {status: count}

    def call(self, method, path, params=None, expect=None, headers=None, query=None, body=None, json_body=None,
             raw_path=None):
        """method and path as documented ("/v1/kv/{key}"), params fill the
        template (defaults: the documented examples); raw_path overrides the
        URL path (already encoded)."""
        op = SPEC["paths"][path].get(method.lower())
        values = path_params(path, op)
        values.update(params or {})
        if raw_path and re.search(r"%(?![0-9A-Fa-f]{2})", raw_path):
            # requests would re-quote a malformed escape: send it by hand
            data = json.dumps(json_body).encode() if json_body is not None else (body or b"")
            return self.raw(path, method.lower(), request_bytes(method, raw_path, headers, data), expect)
        url = self.server.url(raw_path or fill(path, values))
        kwargs = {"headers": dict(headers or {}), "params": query, "timeout": TIMEOUT, "allow_redirects": False}
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body).encode()
            kwargs["headers"].setdefault("Content-Type", "application/json")
        elif body is not None:
            kwargs["data"] = body
        r = requests.request(method, url, **kwargs)
        self.check(path, method.lower(), r.status_code, r.headers, r.content)
        if expect is not None:
            assert r.status_code == expect, f"{method} {url}: {r.status_code} {r.text[:300]} (expected {expect})"
        return r

    def check(self, path, method, status, headers, content):
        item = SPEC["paths"][path]
        op = item.get(method)
        common = SPEC["x-shardkv-common-responses"]
        where = f"{method.upper()} {path} -> {status}"
        if op is not None and str(status) in op["responses"]:
            resp = resolve(op["responses"][str(status)])
        else:
            assert str(status) in common, f"{where}: status not documented (body {content[:200]!r})"
            if op is None:
                assert status in (405, 501), f"{where}: an undocumented method got {status}"
            resp = resolve(common[str(status)])
        self.hits.setdefault((path, method), {}).setdefault(status, 0)
        self.hits[(path, method)][status] += 1

        documented_headers = {h.lower() for h in resp.get("headers", {})}
        for h in ("ETag", "X-Shard", "X-Expires-At-Ms", "Retry-After", "Idempotent-Replayed", "Allow",
                  "Cache-Control", "Content-Security-Policy"):
            if h in headers:
                assert h.lower() in documented_headers, f"{where}: header {h} is sent but not documented"
                hdef = resolve(resp["headers"][h])
                value = headers[h]
                if hdef["schema"].get("type") == "integer":
                    value = int(value)
                validate(value, hdef["schema"], f"{where}: header {h}")
        if method == "head" or status in (204, 304):
            assert content == b"", f"{where}: a body on a bodiless answer"
            return
        content_type = headers.get("Content-Type", "")
        media = {m.split(";")[0].strip(): mt for m, mt in resp.get("content", {}).items()}
        assert content_type.split(";")[0].strip() in media, f"{where}: Content-Type {content_type} not documented ({list(media)})"
        mt = media[content_type.split(";")[0].strip()]
        if content_type.startswith("application/json") and "schema" in mt:
            validate(json.loads(content), mt["schema"], where)

    def raw(self, path, method, request, expect):
        """A hand-written request (for what requests cannot send)."""
        with self.server.raw() as c:
            c.send(request)
            resp = c.read_response(head=method == "head")
        self.check(path, method, resp.status, {k: v for k, v in resp.header_list}, resp.body)
        assert resp.status == expect, resp
        return resp


def drive_kv(d):
    k = "/v1/kv/{key}"
    r = d.call("PUT", k, {"key": "greeting"}, 201, body=b"hello")
    etag = r.headers["ETag"]
    d.call("PUT", k, {"key": "greeting"}, 200, body=b"hello again")
    d.call("PUT", k, {"key": "session"}, 201, body=b"t", query={"ttl": "60"})
    d.call("PUT", k, {"key": "async"}, 202, body=b"a", query={"durability": "async"})
    d.call("GET", k, {"key": "greeting"}, 200)
    d.call("GET", k, {"key": "session"}, 200)
    d.call("HEAD", k, {"key": "greeting"}, 200)
    d.call("HEAD", k, {"key": "nothing"}, 404)
    d.call("GET", k, {"key": "nothing"}, 404)
    d.call("GET", k, raw_path="/v1/kv/%00x", expect=400)
    d.call("GET", k, {"key": "k" * 200}, 400)
    d.call("PUT", k, {"key": "greeting"}, 412, body=b"x", headers={"If-Match": etag})
    d.call("PUT", k, {"key": "greeting"}, 412, body=b"x", headers={"If-None-Match": "*"})
    d.call("PUT", k, {"key": "greeting"}, 400, body=b"x", headers={"If-Match": 'W/"1"'})
    d.call("PUT", k, {"key": "greeting"}, 400, body=b"x", query={"ttl": "0"})
    d.call("PUT", k, {"key": "greeting"}, 400, body=b"x", query={"durability": "later"})
    d.call("PUT", k, {"key": "greeting"}, 400, body=b"x", headers={"Idempotency-Key": "a b"})
    d.call("PUT", k, {"key": "big"}, 413, body=b"v" * 3000)
    r = d.call("PUT", k, {"key": "order"}, 201, body=b"paid", headers={"Idempotency-Key": "order-1"})
    r = d.call("PUT", k, {"key": "order"}, 201, body=b"paid", headers={"Idempotency-Key": "order-1"})
    assert r.headers.get("Idempotent-Replayed") == "true"
    d.call("PUT", k, {"key": "order"}, 422, body=b"other", headers={"Idempotency-Key": "order-1"})
    d.call("DELETE", k, {"key": "greeting"}, 412, headers={"If-Match": '"999"'})
    d.call("DELETE", k, {"key": "greeting"}, 200)
    d.call("DELETE", k, {"key": "greeting"}, 404)
    d.call("DELETE", k, {"key": "async"}, 202, query={"durability": "async"})
    d.call("PATCH", k, {"key": "x"}, 405)
    d.call("PROPFIND", k, {"key": "x"}, 501)
    # the connection layer: a body over --max-body-bytes (only the head is sent)
    d.raw(k, "put", request_bytes("PUT", "/v1/kv/huge", {"Content-Length": "100000"}), 413)

    s = "/v1/kv"
    d.call("GET", s, expect=200)
    r = d.call("GET", s, expect=200, query={"prefix": "", "limit": "1"})
    if r.json()["next_cursor"]:
        d.call("GET", s, expect=200, query={"limit": "1", "cursor": r.json()["next_cursor"]})
    d.call("HEAD", s, expect=200)
    d.call("GET", s, expect=400, query={"limit": "0"})
    d.call("GET", s, expect=400, query={"cursor": "zzz"})
    d.call("GET", s, raw_path="/v1/kv?prefix=%zz", expect=400)
    d.call("POST", s, expect=405)


def drive_counters(d):
    c = "/v1/counters/{name}"
    incr, decr = "/v1/counters/{name}/incr", "/v1/counters/{name}/decr"
    d.call("POST", incr, {"name": "views"}, 201, query={"by": "5"})
    d.call("POST", incr, {"name": "views"}, 200)
    d.call("POST", decr, {"name": "views"}, 200, query={"by": "2"})
    d.call("POST", incr, {"name": "views"}, 202, query={"durability": "async"})
    d.call("POST", decr, {"name": "fresh"}, 201)
    d.call("POST", incr, {"name": "views"}, 400, query={"by": "0"})
    d.call("POST", decr, {"name": "views"}, 400, query={"by": "-9223372036854775808"})
    d.call("POST", incr, {"name": "x"}, 400, raw_path="/v1/counters//incr")
    d.call("POST", incr, {"name": "big"}, 201, query={"by": "9223372036854775807"})
    d.call("POST", incr, {"name": "big"}, 409)
    d.call("POST", incr, {"name": "idem"}, 201, headers={"Idempotency-Key": "i-1"})
    r = d.call("POST", incr, {"name": "idem"}, 201, headers={"Idempotency-Key": "i-1"})
    assert r.headers.get("Idempotent-Replayed") == "true"
    d.call("POST", incr, {"name": "idem"}, 422, headers={"Idempotency-Key": "i-1"}, query={"by": "2"})
    d.call("GET", incr, {"name": "views"}, 405)
    d.call("GET", c, {"name": "views"}, 200)
    d.call("HEAD", c, {"name": "views"}, 200)
    d.call("GET", c, {"name": "nope"}, 404)
    d.call("GET", c, {"name": "x"}, 400, raw_path="/v1/counters/a%00b")
    d.call("GET", c, {"name": "n" * 200}, 400)
    d.call("PUT", c, {"name": "likes"}, 201, json_body={"k": 2})
    d.call("PUT", c, {"name": "likes"}, 200, json_body={"k": 2})
    d.call("PUT", c, {"name": "likes"}, 409, json_body={"k": 3})
    d.call("PUT", c, {"name": "likes"}, 400, json_body={"k": 0})
    d.call("PUT", c, {"name": "likes"}, 400, body=b"{bad")
    d.call("PUT", c, {"name": "empty"}, 201, body=b"")
    d.call("DELETE", c, {"name": "likes"}, 200)
    d.call("DELETE", c, {"name": "likes"}, 404)
    d.call("POST", c, {"name": "likes"}, 405)

    d.call("POST", "/counter", expect=201, json_body={"name": "example-counter"})
    r = d.call("POST", "/counter", expect=200, json_body={"name": "example-counter"})
    cid = r.json()["counter_id"]
    d.call("POST", "/counter", expect=400, json_body={"nom": "x"})
    d.call("POST", "/counter", expect=400, json_body={"name": [1]})
    d.call("POST", "/counter", expect=400, body=b"[1]")
    d.call("POST", "/counter", expect=400, json_body={"name": ""})
    d.call("PUT", "/counter/increment", expect=200, json_body={"counter_id": "example-counter"})
    d.call("PUT", "/counter/increment", expect=200, json_body={"counter_id": cid})
    d.call("PUT", "/counter/decrement", expect=200, json_body={"counter_id": cid})
    d.call("PUT", "/counter/decrement", expect=202, json_body={"counter_id": cid}, query={"durability": "async"})
    d.call("PUT", "/counter/increment", expect=404, json_body={"counter_id": "nope"})
    d.call("PUT", "/counter/decrement", expect=404, json_body={"counter_id": "nope"})
    d.call("PUT", "/counter/increment", expect=400, json_body={})
    d.call("PUT", "/counter/decrement", expect=400, body=b"{")
    d.call("PUT", "/counter/increment", expect=200, json_body={"counter_id": cid}, headers={"Idempotency-Key": "s-1"})
    d.call("PUT", "/counter/increment", expect=422, json_body={"counter_id": "example-counter"}, headers={"Idempotency-Key": "s-1"})
    d.call("POST", "/counter/increment", expect=405)
    for path in ("/counter", "/counter/value"):
        d.call("GET", path, expect=200, query={"counter_id": "example-counter"})
        d.call("HEAD", path, expect=200, query={"counter_id": cid})
        d.call("GET", path, expect=404, query={"counter_id": "nope"})
        d.call("GET", path, expect=400)
        d.call("GET", path, raw_path=f"{path}?counter_id=%zz", expect=400)
    d.call("DELETE", "/counter", expect=405)


def drive_collections(d):
    cs, c = "/v1/collections", "/v1/collections/{name}"
    docs, doc = "/v1/collections/{name}/docs", "/v1/collections/{name}/docs/{id}"
    books = {"name": "books", "primary_key": "isbn", "fields": {"year": {"type": "integer"}, "title": {"type": "string", "max_length": 20}},
             "indexes": ["year"]}
    d.call("GET", cs, expect=200)
    d.call("HEAD", cs, expect=200)
    d.call("POST", cs, expect=201, json_body=books)
    d.call("POST", cs, expect=409, json_body=books)
    d.call("POST", cs, expect=400, json_body={"name": "x"})
    d.call("POST", cs, expect=400, json_body={"name": "x", "primary_key": "id", "index": ["a"]})
    d.call("POST", cs, expect=400, body=b"nope")
    d.call("POST", cs, expect=415, body=b"{}", headers={"Content-Type": "application/xml"})
    d.call("POST", cs, expect=202, json_body={"name": "tmp", "primary_key": "id"}, query={"durability": "async"})
    d.call("POST", cs, expect=400, json_body={"name": "tmp2", "primary_key": "id"}, query={"durability": "no"})
    d.call("GET", cs, expect=200)
    d.call("DELETE", cs, expect=405)
    d.call("GET", c, {"name": "books"}, 200)
    d.call("GET", c, {"name": "users"}, 200)
    d.call("HEAD", c, {"name": "books"}, 200)
    d.call("GET", c, {"name": "nope"}, 404)
    d.call("DELETE", c, {"name": "tmp"}, 200)
    d.call("DELETE", c, {"name": "tmp"}, 404)
    d.call("PUT", c, {"name": "tmp"}, 405)

    d.call("POST", docs, {"name": "books"}, 201, json_body={"isbn": "978-0", "title": "A", "year": 1999})
    d.call("POST", docs, {"name": "books"}, 201, json_body={"isbn": "978-1", "title": "B", "year": 1999})
    d.call("POST", docs, {"name": "books"}, 409, json_body={"isbn": "978-0", "title": "A", "year": 1999})
    d.call("POST", docs, {"name": "books"}, 400, json_body={"title": "no key"})
    d.call("POST", docs, {"name": "books"}, 400, json_body={"isbn": "9", "year": "1999"})
    d.call("POST", docs, {"name": "books"}, 400, json_body={"isbn": "9", "title": "t" * 21})
    d.call("POST", docs, {"name": "books"}, 400, body=b'{"isbn": "1", "isbn": "2"}')
    d.call("POST", docs, {"name": "books"}, 413, json_body={"isbn": "9", "blob": "b" * 2500})
    d.call("POST", docs, {"name": "books"}, 415, body=b"{}", headers={"Content-Type": "multipart/form-data"})
    d.call("POST", docs, {"name": "nope"}, 404, json_body={"isbn": "1"})
    d.call("POST", docs, {"name": "books"}, 202, json_body={"isbn": "978-2", "year": 2001}, query={"durability": "async"})
    r = d.call("GET", docs, {"name": "books"}, 200, query={"year": "1999", "limit": "1"})
    assert r.json()["next_cursor"]
    d.call("GET", docs, {"name": "books"}, 200, query={"year": "1999", "limit": "1", "cursor": r.json()["next_cursor"]})
    d.call("GET", docs, {"name": "books"}, 200)
    d.call("HEAD", docs, {"name": "books"}, 200)
    d.call("GET", docs, {"name": "books"}, 400, query={"title": "A"})
    d.call("GET", docs, {"name": "books"}, 400, query={"year": "x"})
    d.call("GET", docs, {"name": "books"}, 400, query={"limit": "1001"})
    d.call("GET", docs, {"name": "books"}, 400, query={"cursor": r.json()["next_cursor"]})
    d.call("GET", docs, {"name": "books"}, 400, raw_path="/v1/collections/books/docs?year=%zz")
    d.call("GET", docs, {"name": "nope"}, 404)
    d.call("DELETE", docs, {"name": "books"}, 405)

    r = d.call("GET", doc, {"name": "books", "id": "978-0"}, 200)
    etag = r.headers["ETag"]
    d.call("HEAD", doc, {"name": "books", "id": "978-0"}, 200)
    d.call("GET", doc, {"name": "books", "id": "999"}, 404)
    d.call("GET", doc, {"name": "nope", "id": "1"}, 404)
    d.call("GET", doc, {"name": "users", "id": "007"}, 400)
    d.call("PUT", doc, {"name": "books", "id": "978-0"}, 200, json_body={"title": "A2", "year": 2000}, headers={"If-Match": etag})
    d.call("PUT", doc, {"name": "books", "id": "978-0"}, 412, json_body={"title": "A3"}, headers={"If-Match": etag})
    d.call("PUT", doc, {"name": "books", "id": "978-0"}, 412, json_body={"title": "A3"}, headers={"If-None-Match": "*"})
    d.call("PUT", doc, {"name": "books", "id": "978-0"}, 400, json_body={"title": "A3"}, headers={"If-None-Match": "1"})
    d.call("PUT", doc, {"name": "books", "id": "978-0"}, 400, json_body={"isbn": "other"})
    d.call("PUT", doc, {"name": "books", "id": "978-0"}, 415, body=b"{}", headers={"Content-Type": "application/xml"})
    d.call("PUT", doc, {"name": "books", "id": "978-5"}, 201, json_body={"year": 2005})
    d.call("PUT", doc, {"name": "books", "id": "978-6"}, 202, json_body={"year": 2006}, query={"durability": "async"})
    d.call("PUT", doc, {"name": "nope", "id": "1"}, 404, json_body={})
    d.call("PUT", doc, {"name": "books", "id": "978-5"}, 413, json_body={"blob": "b" * 2500})
    d.call("DELETE", doc, {"name": "books", "id": "978-5"}, 412, headers={"If-Match": '"1"'})
    d.call("DELETE", doc, {"name": "books", "id": "978-5"}, 200)
    d.call("DELETE", doc, {"name": "books", "id": "978-5"}, 404)
    d.call("DELETE", doc, {"name": "books", "id": "978-6"}, 202, query={"durability": "async"})
    d.call("DELETE", doc, {"name": "books", "id": "978-6"}, 400, headers={"Idempotency-Key": ""})
    d.call("POST", doc, {"name": "books", "id": "1"}, 405)

    # region-sharded collection: a PUT that would move a document
    d.call("POST", cs, expect=201, json_body={"name": "people", "primary_key": "id", "shard_key": "region",
                                              "fields": {"id": {"type": "integer"}}, "indexes": ["region"]})
    regions = ["US", "EU", "ASIA", "AF", "SA", "OC", "AN", "ME"]
    shard_of = {}
    for i, region in enumerate(regions):
        shard_of[region] = int(d.call("POST", docs, {"name": "people"}, 201, json_body={"id": i, "region": region}).headers["X-Shard"])
    other = next(r for r in regions[1:] if shard_of[r] != shard_of["US"])
    d.call("PUT", doc, {"name": "people", "id": "0"}, 409, json_body={"region": other})


def drive_seed(d):
    d.call("POST", "/store", expect=200, json_body={"userId": 15, "data": "User data example"})
    d.call("POST", "/store", expect=202, json_body={"userId": 16, "data": {"a": 1}}, query={"durability": "async"})
    d.call("POST", "/store", expect=400, json_body={"userId": "15", "data": "x"})
    d.call("POST", "/store", expect=400, json_body={"userId": 15})
    d.call("POST", "/store", expect=400, body=b"{x")
    d.call("POST", "/store", expect=413, json_body={"userId": 17, "data": "d" * 2500})
    d.call("POST", "/store", expect=415, body=b"{}", headers={"Content-Type": "application/xml"})
    d.call("GET", "/store", expect=405)
    d.call("GET", "/store/{userId}", {"userId": 15}, 200)
    d.call("HEAD", "/store/{userId}", {"userId": 15}, 200)
    d.call("GET", "/store/{userId}", {"userId": 99}, 404)
    d.call("GET", "/store/{userId}", {"userId": "abc"}, 400)
    d.call("POST", "/store/{userId}", {"userId": 15}, 405)

    for m in ("POST", "PUT"):
        d.call(m, "/put", expect=200, json_body={"key": "sample_key", "value": "sample_value"})
    d.call("POST", "/put", expect=200, json_body={"key": "json_key", "value": {"a": [1, 2]}})
    d.call("PUT", "/put", expect=202, json_body={"key": "k2", "value": 1}, query={"durability": "async"})
    d.call("POST", "/put", expect=400, json_body={"key": 1, "value": 1})
    d.call("POST", "/put", expect=400, json_body={"key": "k"})
    d.call("PUT", "/put", expect=400, json_body={"key": "", "value": 1})
    d.call("PUT", "/put", expect=400, json_body={"key": "\u0000x", "value": 1})
    d.call("POST", "/put", expect=400, json_body={"key": "k" * 200, "value": 1})
    d.call("POST", "/put", expect=413, json_body={"key": "k", "value": "v" * 2500})
    d.call("PUT", "/put", expect=415, body=b"{}", headers={"Content-Type": "text/html"})
    d.call("POST", "/put", expect=200, json_body={"key": "ik", "value": 1}, headers={"Idempotency-Key": "p-1"})
    d.call("POST", "/put", expect=422, json_body={"key": "ik", "value": 2}, headers={"Idempotency-Key": "p-1"})
    d.call("GET", "/put", expect=405)
    d.raw("/put", "post", request_bytes("POST", "/put", {"Content-Length": "100000"}), 413)
    d.call("GET", "/get", expect=200, query={"key": "sample_key"})
    d.call("GET", "/get", expect=200, query={"key": "json_key"})
    d.call("HEAD", "/get", expect=200, query={"key": "sample_key"})
    d.call("GET", "/get", expect=404, query={"key": "nope"})
    d.call("GET", "/get", expect=400)
    d.call("GET", "/get", raw_path="/get?key=%zz", expect=400)
    d.call("DELETE", "/delete", expect=200, query={"key": "sample_key"})
    d.call("GET", "/delete", expect=200, query={"key": "json_key"})
    d.call("GET", "/delete", expect=404, query={"key": "json_key"})
    d.call("DELETE", "/delete", expect=202, query={"key": "k2", "durability": "async"})
    d.call("DELETE", "/delete", expect=400)
    d.call("HEAD", "/delete", expect=405, query={"key": "x"})

    d.call("PUT", "/kv", expect=200, json_body={"data": {"key": "example", "value": {"a": 1}}})
    d.call("PUT", "/kv", expect=202, json_body={"data": {"key": "ex2", "value": "s"}}, query={"durability": "async"})
    d.call("PUT", "/kv", expect=400, json_body={"data": "x"})
    d.call("PUT", "/kv", expect=400, json_body={"data": {"key": "x"}})
    d.call("PUT", "/kv", expect=413, json_body={"data": {"key": "x", "value": "v" * 2500}})
    d.call("PUT", "/kv", expect=415, body=b"{}", headers={"Content-Type": "application/xml"})
    d.call("GET", "/kv", expect=200, query={"key": "example"})
    d.call("HEAD", "/kv", expect=200, query={"key": "example"})
    d.call("GET", "/kv", expect=404, query={"key": "nope"})
    d.call("GET", "/kv", expect=400)
    d.call("DELETE", "/kv", expect=200, query={"key": "example"})
    d.call("DELETE", "/kv", expect=404, query={"key": "example"})
    d.call("DELETE", "/kv", expect=202, query={"key": "ex2", "durability": "async"})
    d.call("DELETE", "/kv", expect=400, query={"key": "x", "durability": "x"})
    d.call("POST", "/kv", expect=405)

    u, one = "/users", "/users/{user_id}"
    alice = {"user_id": 1, "name": "Alice", "region": "US", "email": "alice@example.com"}
    d.call("POST", u, expect=200, json_body=alice)
    d.call("POST", u, raw_path="/users/", expect=200, json_body={**alice, "user_id": 2})
    d.call("POST", u, expect=409, json_body=alice)
    d.call("POST", u, expect=400, json_body={"name": "no id"})
    d.call("POST", u, expect=400, json_body={"user_id": "1"})
    d.call("POST", u, expect=400, json_body={"user_id": 3, "name": "n" * 101})
    d.call("POST", u, expect=413, json_body={"user_id": 3, "blob": "b" * 2500})
    d.call("POST", u, expect=415, body=b"{}", headers={"Content-Type": "application/xml"})
    d.call("POST", u, expect=202, json_body={"user_id": 4, "region": "EU"}, query={"durability": "async"})
    d.call("GET", u, expect=200, query={"region": "US", "limit": "50"})
    d.call("GET", u, expect=200)
    d.call("HEAD", u, expect=200)
    d.call("GET", u, expect=400, query={"name": "Alice"})
    d.call("GET", u, expect=400, query={"limit": "x"})
    d.call("PUT", u, expect=405)
    d.call("GET", one, {"user_id": 1}, 200)
    d.call("HEAD", one, {"user_id": 1}, 200)
    d.call("GET", one, {"user_id": 99}, 404)
    d.call("GET", one, {"user_id": "x"}, 400)
    d.call("PUT", one, {"user_id": 1}, 200, json_body={"name": "Al", "region": "US"})
    d.call("PUT", one, {"user_id": 5}, 201, json_body={"name": "Eve"})
    d.call("PUT", one, {"user_id": 6}, 202, json_body={"name": "Mallory"}, query={"durability": "async"})
    d.call("PUT", one, {"user_id": 1}, 400, json_body={"user_id": 2})
    d.call("PUT", one, {"user_id": 1}, 412, json_body={}, headers={"If-Match": '"999"'})
    d.call("PUT", one, {"user_id": 1}, 413, json_body={"blob": "b" * 2500})
    d.call("PUT", one, {"user_id": 1}, 415, body=b"{}", headers={"Content-Type": "application/xml"})
    d.call("DELETE", one, {"user_id": 5}, 200)
    d.call("DELETE", one, {"user_id": 5}, 404)
    d.call("DELETE", one, {"user_id": 6}, 202, query={"durability": "async"})
    d.call("DELETE", one, {"user_id": 1}, 412, headers={"If-Match": '"999"'})
    d.call("POST", one, {"user_id": 1}, 405)
    # a dropped users collection
    d.call("DELETE", "/v1/collections/{name}", {"name": "users"}, 200)
    d.call("GET", u, expect=404)
    d.call("GET", one, {"user_id": 1}, 404)
    d.call("POST", u, expect=404, json_body=alice)


def drive_operations(d):
    d.call("GET", "/shards", expect=200)
    d.call("GET", "/shards", expect=200, query={"data": "1", "limit": "5"})
    d.call("HEAD", "/shards", expect=200)
    d.call("GET", "/shards", expect=400, query={"limit": "x"})
    d.call("POST", "/shards", expect=405)
    d.call("GET", "/v1/kv/{key}", {"key": "hot"}, 404)
    d.call("GET", "/v1/hotkeys", expect=200)
    d.call("GET", "/v1/hotkeys", expect=200, query={"limit": "3"})
    d.call("GET", "/v1/hotkeys", expect=400, query={"limit": "0"})
    d.call("GET", "/v1/placement", expect=200, query={"key": "alice"})
    d.call("GET", "/v1/placement", expect=400, query={"key": ""})
    d.call("HEAD", "/v1/placement", expect=200, query={"key": "store:5"})
    for path in ("/health", "/health/live", "/health/ready", "/metrics", "/cache/stats", "/v1/hotkeys", "/"):
        d.call("GET", path, expect=200)
        d.call("HEAD", path, expect=200)
        d.call("DELETE", path, expect=405)
        d.call("BREW", path, expect=501)
    r = d.call("GET", "/", expect=200, headers={"Accept": "text/html"})
    assert r.headers["Content-Type"].startswith("text/html")
    d.call("GET", "/", expect=304, headers={"Accept": "text/html", "If-None-Match": r.headers["ETag"]})
    for path, params in (("/ui/{file}", {"file": "index.html"}), ("/ui/{file}", {"file": "docs/docs.js"}),
                         ("/ui/{file}", {"file": "docs/docs.css"}), ("/docs", {}), ("/openapi.json", {})):
        r = d.call("GET", path, params, 200)
        d.call("GET", path, params, 304, headers={"If-None-Match": r.headers["ETag"]})
        d.call("HEAD", path, params, 200)
    d.call("GET", "/docs", raw_path="/docs/", expect=200)
    d.call("GET", "/ui/{file}", {"file": "nope.js"}, 404)
    d.call("PUT", "/openapi.json", expect=405)
    # connection-level errors on any route
    d.raw("/health", "get", b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505)
    d.raw("/health", "get", b"GET /health HTTP/1.1\r\n\r\n", 400)
    d.raw("/health", "get", b"GET /health?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)
    d.raw("/health", "get", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 17000 + b"\r\n\r\n", 431)


def drive_limits(d):
    """A node at --max-keys: every write that adds data is 507 memory_limit."""
    k = "/v1/kv/{key}"
    i = 0
    while True:
        r = d.call("PUT", k, {"key": f"fill{i}"}, None, body=b"x")
        if r.status_code == 507:
            break
        assert r.status_code == 201 and i < 50, r.text
        i += 1
    d.call("PUT", k, {"key": "more"}, 507, body=b"x")
    d.call("POST", "/v1/counters/{name}/incr", {"name": "c"}, 507)
    d.call("PUT", "/v1/counters/{name}", {"name": "c3"}, 507, json_body={})
    d.call("POST", "/counter", expect=507, json_body={"name": "c2"})
    d.call("POST", "/v1/collections", expect=507, json_body={"name": "more", "primary_key": "id"})
    d.call("POST", "/v1/collections/{name}/docs", {"name": "users"}, 507, json_body={"user_id": 9})
    d.call("PUT", "/v1/collections/{name}/docs/{id}", {"name": "users", "id": 9}, 507, json_body={})
    d.call("POST", "/users", expect=507, json_body={"user_id": 9})
    d.call("PUT", "/users/{user_id}", {"user_id": 9}, 507, json_body={})
    d.call("POST", "/store", expect=507, json_body={"userId": 1, "data": "x"})
    d.call("POST", "/put", expect=507, json_body={"key": "k", "value": "v"})
    d.call("PUT", "/kv", expect=507, json_body={"data": {"key": "k", "value": "v"}})
    d.call("DELETE", k, {"key": "fill0"}, 200)   # deletes are always accepted


# Statuses every documented operation of these kinds must have been seen answering.
MUST_SEE = {200, 201, 202, 204, 304, 400, 404, 405, 409, 412, 413, 415, 422, 501, 507}


def test_real_answers_match_the_document(start_server):
    node = start_server("--max-value-bytes", "2048", "--max-body-bytes", "8192", "--max-key-bytes", "128")
    d = Driver(node)
    drive_kv(d)
    drive_counters(d)
    drive_collections(d)
    drive_seed(d)
    drive_operations(d)
    for path in SPEC["paths"]:
        d.call("OPTIONS", path, expect=204)
    limited = start_server("--max-keys", "12", "--shards", "2")
    dl = Driver(limited)
    drive_limits(dl)
    for key, statuses in dl.hits.items():
        for st, n in statuses.items():
            d.hits.setdefault(key, {}).setdefault(st, 0)
            d.hits[key][st] += n

    # Every documented operation was driven, and the statuses a client can
    # provoke were all seen.
    missing = [f"{m.upper()} {p}" for p, m, _ in operations() if (p, m) not in d.hits]
    assert not missing, f"operations never driven: {missing}"
    seen = {st for statuses in d.hits.values() for st in statuses}
    assert MUST_SEE <= seen, f"statuses never seen: {MUST_SEE - seen}"
    # The coverage (shown with pytest -s, or when the test fails).
    print("\nOpenAPI coverage (operation: statuses seen):")
    for (p, m), statuses in d.hits.items():
        documented = m in SPEC["paths"][p]
        print(f"  {m.upper():8} {p:36} {' '.join(str(s) for s in sorted(statuses))}{'' if documented else '  (not a method of the path)'}")


# ---- 4. the docs page -------------------------------------------------------------------------


class _Refs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []          # (tag, attribute, value)
        self.inline = []        # problems
        self._script = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name, value in attrs.items():
            if name in ("src", "href", "action", "formaction", "poster", "data") and value is not None:
                self.refs.append((tag, name, value))
            if name == "style":
                self.inline.append(f"style attribute on <{tag}>")
            if name.startswith("on"):
                self.inline.append(f"{name} handler on <{tag}>")
        if tag == "style":
            self.inline.append("<style> element")
        if tag == "script":
            self._script = attrs
            if "src" not in attrs:
                self.inline.append("inline <script>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None and data.strip():
            self.inline.append("script element with content")


def same_origin(value):
    """A URL on the page's origin, or an inline data: URL (loads nothing)."""
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme == "data":
        return True
    return not parsed.scheme and not parsed.netloc and not value.startswith("//")


def test_docs_page_is_self_contained(server):
    for path in ("/docs", "/docs/"):
        r = requests.get(server.url(path), timeout=TIMEOUT)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/html")
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
    parser = _Refs()
    parser.feed(r.text)
    assert not parser.inline, parser.inline
    assert parser.refs, "the page references nothing"
    for tag, attr, value in parser.refs:
        assert same_origin(value), f"<{tag} {attr}={value!r}> is not same-origin"
    scripts = [v for t, a, v in parser.refs if t == "script"]
    styles = [v for t, a, v in parser.refs if t == "link"]
    assert "/ui/docs/docs.js" in scripts and "/ui/docs/docs.css" in styles
    assert re.search(r'<html[^>]* lang="en"', r.text) and '<meta name="viewport"' in r.text
    for tag, attr, value in parser.refs:
        if value.startswith(("#", "data:")):
            continue
        target = server.url(urllib.parse.urljoin("/docs", value))
        got = requests.get(target, timeout=TIMEOUT)
        assert got.status_code == 200, f"{value}: {got.status_code}"
    js = requests.get(server.url("/ui/docs/docs.js"), timeout=TIMEOUT)
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert "/openapi.json" in js.text
    css = requests.get(server.url("/ui/docs/docs.css"), timeout=TIMEOUT)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    # No network beyond the node: no absolute URLs loaded by the script or the style.
    for text, name in ((js.text, "docs.js"), (css.text, "docs.css")):
        assert not re.search(r"""(fetch|import|url)\s*\(\s*['"]?(https?:)?//""", text), f"{name} loads a remote resource"
        assert "@import" not in text, name
    assert "innerHTML" not in js.text and "eval(" not in js.text
