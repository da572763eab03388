"""VOSpace 2.1 subset at ``/vospace`` over the file store (DESIGN, "Service URLs", "Decisions").

Every document the service writes validates against the VOSpace 2.1 schema (node
documents against ``VOSpace-2.1-node.xsd``, which adds the global ``vos:node``).  Node
URIs are ``vos://vocloud.local!vospace/{user}/{path}``; sharing is ``core#publicread`` and
``core#groupread``; faults are ``text/plain`` with the fault name first (VOSpace 2.1
section 6, "Web service operations"), and an anonymous request for a protected node gets
401 with a Basic challenge (DESIGN, "Access").
"""

from __future__ import annotations

import copy
import hashlib
import io
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from flask.testing import FlaskClient
from lxml import etree

from tests.conftest import XSD_DIR, Account, LiveService, assert_valid, start_service

PUBLIC = "http://testserver"
AUTH = "vocloud.local!vospace"
VOS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS = {"vos": VOS}
CORE = "ivo://ivoa.net/vospace/core#"
NODE_XSD = "VOSpace-2.1-node.xsd"
CONTENT = bytes(range(256)) * 8  # 2048 bytes


# Helpers ------------------------------------------------------------------------------


def uri(path: str, sep: str = "!") -> str:
    return f"vos://vocloud.local{sep}vospace/{path}" if path else f"vos://{AUTH}"


def node_doc(path: str, kind: str = "DataNode", props: Mapping[str, str | None] | None = None,
             node_uri: str | None = None) -> bytes:
    """A node document as a client sends it; a None property value is ``xsi:nil``."""
    items = ""
    for key, value in (props or {}).items():
        if value is None:
            items += f'<vos:property uri="{CORE}{key}" xsi:nil="true"/>'
        else:
            items += f'<vos:property uri="{CORE}{key}">{value}</vos:property>'
    nodes = "<vos:nodes/>" if kind == "ContainerNode" else ""
    return (f'<vos:node xmlns:vos="{VOS}" xmlns:xsi="{XSI}" xsi:type="vos:{kind}" '
            f'uri="{node_uri or uri(path)}"><vos:properties>{items}</vos:properties>'
            f'{nodes}</vos:node>').encode()


def transfer_doc(target: str, direction: str, *protocols: str, view: str | None = None,
                 methods: tuple[str, ...] = ()) -> bytes:
    sec = "".join(f'<vos:securityMethod uri="{m}"/>' for m in methods)
    protos = "".join(f'<vos:protocol uri="{CORE}{p}">{sec}</vos:protocol>' for p in protocols)
    view_xml = f'<vos:view uri="{view}"/>' if view else ""
    return (f'<vos:transfer xmlns:vos="{VOS}" version="2.1"><vos:target>{target}</vos:target>'
            f'<vos:direction>{direction}</vos:direction>{view_xml}{protos}'
            f'</vos:transfer>').encode()


def put_file(client: FlaskClient, account: Account, path: str, data: bytes = CONTENT) -> None:
    r = client.put(f"/files/{account.name}/{quote(path)}", data=data, headers=account.headers)
    assert r.status_code in (201, 204), r.text


def get_node(client: FlaskClient, path: str, account: Account | None = None,
             **params: str) -> etree._Element:
    r = client.get(f"/vospace/nodes/{path}", query_string=params,
                   headers=account.headers if account else {})
    assert r.status_code == 200, r.text
    assert r.mimetype == "text/xml"
    return assert_valid(r.data, NODE_XSD)


def props(node: etree._Element) -> dict[str, str]:
    return {p.get("uri").removeprefix(CORE): (p.text or "")
            for p in node.findall("vos:properties/vos:property", NS)}


def xsi_type(node: etree._Element) -> str | None:
    return node.get(f"{{{XSI}}}type")


def children(node: etree._Element) -> list[etree._Element]:
    return node.findall("vos:nodes/vos:node", NS)


def assert_fault(response: Any, status: int, fault: str) -> str:
    """A fault: the status, text/plain, and the exact fault name then whitespace (section 6)."""
    assert response.status_code == status, response.text
    assert response.mimetype == "text/plain"
    text: str = response.text
    assert text.split(None, 1)[0] == fault, text
    assert "<html" not in text.lower()
    return text


def set_node(client: FlaskClient, account: Account, path: str, kind: str,
             props_: Mapping[str, str | None], **query: str):  # type: ignore[no-untyped-def]
    return client.post(f"/vospace/nodes/{path}", data=node_doc(path, kind, props_),
                       query_string=query,
                       headers={**account.headers, "Content-Type": "text/xml"})


@pytest.fixture
def tree(client: FlaskClient, accounts: dict[str, Account]) -> Account:
    """alice's tree: ``d/a.bin`` (CONTENT), ``d/b.txt``, ``d/sub/c.bin`` and ``top.bin``."""
    alice = accounts["alice"]
    put_file(client, alice, "d/a.bin")
    put_file(client, alice, "d/b.txt", b"hello")
    put_file(client, alice, "d/sub/c.bin", b"x")
    put_file(client, alice, "top.bin", b"top")
    return alice


# getNode -----------------------------------------------------------------------------


def test_get_data_node(client: FlaskClient, tree: Account) -> None:
    """getNode of a file: a DataNode with length, MD5, type, date (ISO, Z), creator,
    publicread; accepts anyview, provides defaultview; busy="false"; version 2.1."""
    node = get_node(client, "alice/d/a.bin", tree)
    assert node.tag == f"{{{VOS}}}node"
    assert xsi_type(node) == "vos:DataNode"
    assert node.get("uri") == uri("alice/d/a.bin")
    assert node.get("busy") == "false"
    assert node.get("version") == "2.1"
    p = props(node)
    assert p["length"] == str(len(CONTENT))
    assert p["MD5"] == hashlib.md5(CONTENT).hexdigest()
    assert p["type"] == "application/octet-stream"
    assert p["date"].endswith("Z") and p["date"][10] == "T"
    assert p["creator"] == "alice"
    assert p["publicread"] == "false"
    assert "groupread" not in p
    accepts = [v.get("uri") for v in node.findall("vos:accepts/vos:view", NS)]
    provides = [v.get("uri") for v in node.findall("vos:provides/vos:view", NS)]
    assert CORE + "anyview" in accepts
    assert CORE + "defaultview" in provides
    length = node.find(f"vos:properties/vos:property[@uri='{CORE}length']", NS)
    assert length is not None and length.get("readOnly") == "true"


def test_get_container_lists_children(client: FlaskClient, tree: Account) -> None:
    """A folder is a ContainerNode whose direct children (only those, compliance item 45)
    carry xsi:type, sorted by name; a child folder has an empty <nodes>."""
    node = get_node(client, "alice/d", tree)
    assert xsi_type(node) == "vos:ContainerNode"
    kids = children(node)
    assert [k.get("uri") for k in kids] == [uri("alice/d/a.bin"), uri("alice/d/b.txt"),
                                             uri("alice/d/sub")]
    assert [xsi_type(k) for k in kids] == ["vos:DataNode", "vos:DataNode", "vos:ContainerNode"]
    assert props(kids[1])["length"] == "5"
    assert kids[2].find("vos:nodes", NS) is not None
    assert children(kids[2]) == []


@pytest.mark.parametrize("path", ["alice/d", "alice/d/a.bin", "alice", ""])
def test_detail_levels(client: FlaskClient, tree: Account, path: str) -> None:
    """detail=min: no properties, views or capabilities, xsi:type kept; detail=properties:
    properties but no views; no detail = max: everything (section 6.3.1, "getNode")."""
    minimal = get_node(client, path, tree, detail="min")
    assert minimal.find("vos:properties", NS) is None
    assert minimal.find("vos:accepts", NS) is None
    assert xsi_type(minimal) in ("vos:DataNode", "vos:ContainerNode")
    for kid in children(minimal):
        assert xsi_type(kid) is not None
        assert kid.find("vos:properties", NS) is None
    with_props = get_node(client, path, tree, detail="properties")
    assert with_props.find("vos:properties", NS) is not None
    assert with_props.find("vos:accepts", NS) is None
    assert with_props.find("vos:capabilities", NS) is None
    full = get_node(client, path, tree)
    assert full.find("vos:accepts", NS) is not None
    assert full.find("vos:capabilities", NS) is not None
    assert etree.tostring(get_node(client, path, tree, detail="max")) == etree.tostring(full)


def test_user_root_and_space_root(client: FlaskClient, tree: Account,
                                  accounts: dict[str, Account]) -> None:
    """/vospace/nodes/alice is alice's folder (with availableSpace and quota for her);
    /vospace/nodes is the root of the space, whose child is the caller's own folder."""
    node = get_node(client, "alice", tree)
    assert node.get("uri") == uri("alice")
    assert [k.get("uri") for k in children(node)] == [uri("alice/d"), uri("alice/top.bin")]
    p = props(node)
    assert int(p["availableSpace"]) <= int(p["quota"])
    root = get_node(client, "", tree)
    assert root.get("uri") == f"vos://{AUTH}"
    assert [k.get("uri") for k in children(root)] == [uri("alice")]
    assert children(get_node(client, "", accounts["bob"]))[0].get("uri") == uri("bob")
    assert children(get_node(client, "")) == []  # anonymous


def test_children_paging(client: FlaskClient, tree: Account) -> None:
    """``limit`` caps the children; ``uri`` starts the page at that child (section 6.3.1)."""
    assert len(children(get_node(client, "alice/d", tree, limit="2"))) == 2
    assert children(get_node(client, "alice/d", tree, limit="0")) == []
    page = get_node(client, "alice/d", tree, uri=uri("alice/d/b.txt"), limit="5")
    assert [k.get("uri") for k in children(page)] == [uri("alice/d/b.txt"), uri("alice/d/sub")]
    for bad in ({"limit": "-1"}, {"limit": "x"}, {"detail": "all"}):
        r = client.get("/vospace/nodes/alice/d", query_string=bad, headers=tree.headers)
        assert_fault(r, 400, "InvalidArgument")
    r = client.get("/vospace/nodes/alice/d", query_string={"uri": uri("alice/top.bin")},
                   headers=tree.headers)
    assert_fault(r, 400, "InvalidURI")


def test_node_uris_are_percent_encoded(client: FlaskClient,
                                       accounts: dict[str, Account]) -> None:
    """Node URIs are URI-encoded (RFC 3986); the URL and the vos URI name the same node."""
    alice = accounts["alice"]
    put_file(client, alice, "my data/Ondřejov #1.txt", b"x")
    node = get_node(client, quote("alice/my data"), alice)
    [kid] = children(node)
    assert kid.get("uri") == uri("alice/my%20data/Ond%C5%99ejov%20%231.txt")


def test_access_to_private_nodes(client: FlaskClient, tree: Account,
                                 accounts: dict[str, Account]) -> None:
    """Another user gets 404 NodeNotFound for a private node, an anonymous client 401 with a
    Basic challenge, exactly as /files decides; missing nodes are 404 too."""
    bob = accounts["bob"]
    for path in ("alice/d/a.bin", "alice/d", "alice", "alice/nothing", "nobody/x"):
        assert_fault(client.get(f"/vospace/nodes/{path}", headers=bob.headers), 404,
                     "NodeNotFound")
        r = client.get(f"/vospace/nodes/{path}")
        assert_fault(r, 401, "PermissionDenied")
        assert r.headers["WWW-Authenticate"].startswith('Basic realm="vocloud"')
    r = client.get("/vospace/nodes/alice/nothing", headers=tree.headers)
    assert assert_fault(r, 404, "NodeNotFound").strip() == \
        f"NodeNotFound {uri('alice/nothing')}"
    assert_fault(client.get("/vospace/nodes/alice/a//b", headers=tree.headers), 400,
                 "InvalidURI")


def test_view_data_redirects_to_the_bytes(client: FlaskClient, tree: Account) -> None:
    """``view=data`` (deprecated in 2.1, section 6.4.3) is a 303 to the /files URL."""
    r = client.get("/vospace/nodes/alice/d/a.bin?view=data", headers=tree.headers)
    assert r.status_code == 303
    assert r.headers["Location"] == f"{PUBLIC}/files/alice/d/a.bin"
    assert_fault(client.get("/vospace/nodes/alice/d/a.bin?view=rss", headers=tree.headers),
                 400, "ViewNotSupported")


# createNode ---------------------------------------------------------------------------


def _create(client: FlaskClient, account: Account, path: str, body: bytes,
            **headers: str):  # type: ignore[no-untyped-def]
    return client.put(f"/vospace/nodes/{path}", data=body,
                      headers={**account.headers, "Content-Type": "text/xml", **headers})


def test_create_container_and_data_nodes(client: FlaskClient,
                                         accounts: dict[str, Account]) -> None:
    """createNode (section 6.2.1): a ContainerNode makes a folder, a DataNode an empty
    file; 201 with the node document and its Location."""
    alice = accounts["alice"]
    r = _create(client, alice, "alice/new", node_doc("alice/new", "ContainerNode"))
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"{PUBLIC}/vospace/nodes/alice/new"
    node = assert_valid(r.data, NODE_XSD)
    assert xsi_type(node) == "vos:ContainerNode"
    assert node.get("uri") == uri("alice/new")

    body = node_doc("alice/new/spec.fits", "UnstructuredDataNode", {"type": "application/fits"})
    r = _create(client, alice, "alice/new/spec.fits", body)
    assert r.status_code == 201, r.text
    node = assert_valid(r.data, NODE_XSD)
    assert xsi_type(node) == "vos:DataNode"
    assert props(node)["length"] == "0"
    assert props(node)["type"] == "application/fits"
    r = client.get("/files/alice/new/spec.fits", headers=alice.headers)
    assert r.status_code == 200 and r.data == b""
    assert r.mimetype == "application/fits"

    r = client.get("/files/alice/new/", headers=alice.headers)
    assert [e["name"] for e in r.get_json()["entries"]] == ["spec.fits"]


def test_create_generic_node_is_a_data_node(client: FlaskClient,
                                            accounts: dict[str, Account]) -> None:
    """No xsi:type means a generic Node; the space makes its default type, a DataNode."""
    alice = accounts["alice"]
    body = f'<vos:node xmlns:vos="{VOS}" uri="{uri("alice/plain")}"/>'.encode()
    r = _create(client, alice, "alice/plain", body)
    assert r.status_code == 201, r.text
    assert xsi_type(assert_valid(r.data, NODE_XSD)) == "vos:DataNode"


def test_create_auto_name(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """``.auto`` as the last name makes a new unique name (section 6.2.1)."""
    alice = accounts["alice"]
    r = _create(client, alice, "alice/.auto", node_doc("alice/.auto", "ContainerNode"))
    assert r.status_code == 201, r.text
    made = assert_valid(r.data, NODE_XSD).get("uri")
    assert made.startswith(uri("alice/")) and not made.endswith(".auto")
    assert r.headers["Location"] == made.replace(f"vos://{AUTH}", f"{PUBLIC}/vospace/nodes")


def test_create_duplicate_is_409(client: FlaskClient, tree: Account) -> None:
    """An existing node (file, folder, the user's own folder) is 409 DuplicateNode."""
    for path, kind in (("alice/d", "ContainerNode"), ("alice/d/a.bin", "DataNode"),
                       ("alice/d", "DataNode"), ("alice", "ContainerNode")):
        text = assert_fault(_create(client, tree, path, node_doc(path, kind)), 409,
                            "DuplicateNode")
        assert uri(path) in text
    r = client.get("/files/alice/d/a.bin", headers=tree.headers)
    assert r.data == CONTENT  # not replaced


def test_create_without_parent_is_404_container_not_found(client: FlaskClient,
                                                           tree: Account) -> None:
    """A missing parent, or a parent that is a file, is 404 ContainerNotFound; nothing made."""
    r = _create(client, tree, "alice/no/such/x", node_doc("alice/no/such/x"))
    assert uri("alice/no/such") in assert_fault(r, 404, "ContainerNotFound")
    r = _create(client, tree, "alice/top.bin/x", node_doc("alice/top.bin/x", "ContainerNode"))
    assert_fault(r, 404, "ContainerNotFound")
    assert client.get("/files/alice/no", headers=tree.headers).status_code == 404


def test_create_uri_must_match_the_url(client: FlaskClient,
                                       accounts: dict[str, Account]) -> None:
    """Section 6.2.1: a node URI that is not the URL's node, of another authority, or not
    a vos URI is 400 InvalidURI; '~' is as good as '!' (section 2)."""
    alice = accounts["alice"]
    for body_uri in (uri("alice/other"), "vos://elsewhere.org!vospace/alice/x",
                     "ivo://vocloud.local/vospace/alice/x", "vos://vocloud.local!vospace/alice/x?y",
                     "vos://vocloud.local!vospace/alice/a b"):
        r = _create(client, alice, "alice/x", node_doc("alice/x", node_uri=body_uri))
        assert_fault(r, 400, "InvalidURI")
    assert client.get("/files/alice/x", headers=alice.headers).status_code == 404
    r = _create(client, alice, "alice/x",
                node_doc("alice/x", node_uri="vos://VOCLOUD.local~vospace/alice/x"))
    assert r.status_code == 201, r.text
    assert assert_valid(r.data, NODE_XSD).get("uri") == uri("alice/x")


DOCTYPE_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE node [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    f'<vos:node xmlns:vos="{VOS}" xmlns:xsi="{XSI}" xsi:type="vos:DataNode" '
    f'uri="{uri("alice/evil")}"><vos:properties><vos:property uri="{CORE}title">&c;'
    '</vos:property></vos:properties></vos:node>')
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE node [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    f'<vos:node xmlns:vos="{VOS}" xmlns:xsi="{XSI}" xsi:type="vos:DataNode" '
    f'uri="{uri("alice/evil")}"><vos:properties><vos:property uri="{CORE}title">&xxe;'
    '</vos:property></vos:properties></vos:node>')


@pytest.mark.parametrize("body", [
    DOCTYPE_BOMB.encode(),
    EXTERNAL_ENTITY.encode(),
    EXTERNAL_ENTITY.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    .encode("utf-16"),  # past a scan of the raw bytes
    b"<vos:node",
    b"not xml at all",
    f'<vos:transfer xmlns:vos="{VOS}"/>'.encode(),
], ids=["entity-expansion", "external-entity", "utf16-doctype", "truncated", "text",
        "wrong-root"])
def test_malicious_or_broken_xml_is_400(client: FlaskClient, accounts: dict[str, Account],
                                        body: bytes) -> None:
    """DOCTYPEs and entities are refused before anything is expanded or fetched; broken
    XML and other documents are 400 InvalidArgument; nothing is created."""
    alice = accounts["alice"]
    text = assert_fault(_create(client, alice, "alice/evil", body), 400, "InvalidArgument")
    assert "root:" not in text  # /etc/passwd never read
    assert client.get("/files/alice/evil", headers=alice.headers).status_code == 404


def test_unsupported_types_are_400(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """LinkNode (parsed, not supported) and an unknown xsi:type are 400 TypeNotSupported
    (section 3.1: parse all types, no XML parser error for unsupported ones)."""
    alice = accounts["alice"]
    link = (f'<vos:node xmlns:vos="{VOS}" xmlns:xsi="{XSI}" xsi:type="vos:LinkNode" '
            f'uri="{uri("alice/l")}"><vos:target>{uri("alice/d")}</vos:target></vos:node>')
    assert_fault(_create(client, alice, "alice/l", link.encode()), 400, "TypeNotSupported")
    odd = node_doc("alice/l", "FancyNode")
    assert_fault(_create(client, alice, "alice/l", odd), 400, "TypeNotSupported")


def test_create_properties(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """publicread and groupread in the template are applied; a read-only property or one
    the service does not keep is 403 PermissionDenied and nothing is created."""
    alice, bob = accounts["alice"], accounts["bob"]
    body = node_doc("alice/pub.txt", props={"publicread": "true", "groupread": "bob"})
    r = _create(client, alice, "alice/pub.txt", body)
    assert r.status_code == 201, r.text
    p = props(assert_valid(r.data, NODE_XSD))
    assert p["publicread"] == "true" and p["groupread"] == "bob"
    assert client.get("/files/alice/pub.txt").status_code == 200
    for extra in ({"length": "10"}, {"MD5": "0" * 32}, {"title": "My data"}):
        r = _create(client, alice, "alice/ro.txt", node_doc("alice/ro.txt", props=extra))
        assert_fault(r, 403, "PermissionDenied")
    assert client.get("/files/alice/ro.txt", headers=alice.headers).status_code == 404
    r = _create(client, alice, "alice/bad.txt",
                node_doc("alice/bad.txt", props={"publicread": "maybe"}))
    assert_fault(r, 400, "InvalidArgument")
    assert client.get("/vospace/nodes/alice/pub.txt", headers=bob.headers).status_code == 200


def test_create_needs_rights(client: FlaskClient, tree: Account,
                             accounts: dict[str, Account]) -> None:
    """Anonymous: 401 with a challenge; bob in alice's private tree: 404; the root and
    another user's folder: 403."""
    bob = accounts["bob"]
    r = client.put("/vospace/nodes/alice/d/new", data=node_doc("alice/d/new"))
    assert_fault(r, 401, "PermissionDenied")
    assert "WWW-Authenticate" in r.headers
    assert_fault(_create(client, bob, "alice/d/new", node_doc("alice/d/new")), 404,
                 "ContainerNotFound")
    assert_fault(_create(client, bob, "alice", node_doc("alice", "ContainerNode")), 403,
                 "PermissionDenied")
    assert_fault(_create(client, bob, "", node_doc("", "ContainerNode", node_uri=uri(""))),
                 409, "DuplicateNode")


# deleteNode ---------------------------------------------------------------------------


def test_delete_node(client: FlaskClient, tree: Account, accounts: dict[str, Account]) -> None:
    """deleteNode (section 6.2.4): 204; a container goes with all its children."""
    bob = accounts["bob"]
    assert_fault(client.delete("/vospace/nodes/alice/d", headers=bob.headers), 404,
                 "NodeNotFound")
    assert_fault(client.delete("/vospace/nodes/alice/d"), 401, "PermissionDenied")
    r = client.delete("/vospace/nodes/alice/top.bin", headers=tree.headers)
    assert r.status_code == 204, r.text
    assert client.get("/files/alice/top.bin", headers=tree.headers).status_code == 404
    r = client.delete("/vospace/nodes/alice/d", headers=tree.headers)
    assert r.status_code == 204, r.text
    assert client.get("/files/alice/d/sub/c.bin", headers=tree.headers).status_code == 404
    assert_fault(client.get("/vospace/nodes/alice/d", headers=tree.headers), 404,
                 "NodeNotFound")


def test_delete_faults(client: FlaskClient, tree: Account) -> None:
    """Missing node: 404 NodeNotFound; missing parent: 404 ContainerNotFound; a user's own
    folder and the root of the space: 403 PermissionDenied."""
    r = client.delete("/vospace/nodes/alice/d/none", headers=tree.headers)
    assert assert_fault(r, 404, "NodeNotFound").strip().endswith(uri("alice/d/none"))
    r = client.delete("/vospace/nodes/alice/none/x", headers=tree.headers)
    assert uri("alice/none") in assert_fault(r, 404, "ContainerNotFound")
    assert_fault(client.delete("/vospace/nodes/alice", headers=tree.headers), 403,
                 "PermissionDenied")
    assert_fault(client.delete("/vospace/nodes", headers=tree.headers), 403,
                 "PermissionDenied")


# setNode ------------------------------------------------------------------------------


def test_set_publicread(client: FlaskClient, tree: Account) -> None:
    """setNode publicread=true: anonymous clients read the file through /files and
    getNode; publicread=false (or nil) takes it back."""
    assert client.get("/files/alice/top.bin").status_code == 401
    r = set_node(client, tree, "alice/top.bin", "DataNode", {"publicread": "true"})
    assert r.status_code == 200, r.text
    assert props(assert_valid(r.data, NODE_XSD))["publicread"] == "true"
    r = client.get("/files/alice/top.bin")
    assert r.status_code == 200 and r.data == b"top"
    assert props(get_node(client, "alice/top.bin"))["publicread"] == "true"
    r = set_node(client, tree, "alice/top.bin", "DataNode", {"publicread": None})
    assert r.status_code == 200, r.text
    assert client.get("/files/alice/top.bin").status_code == 401


def test_set_publicread_on_a_folder(client: FlaskClient, tree: Account) -> None:
    """On a folder, publicread changes the folder itself unless ``recursive=true``."""
    r = set_node(client, tree, "alice/d", "ContainerNode", {"publicread": "true"})
    assert r.status_code == 200, r.text
    assert children(get_node(client, "alice/d")) == []
    r = set_node(client, tree, "alice/d", "ContainerNode", {"publicread": "true"},
                 recursive="true")
    assert r.status_code == 200, r.text
    assert len(children(get_node(client, "alice/d"))) == 3
    assert client.get("/files/alice/d/sub/c.bin").status_code == 200


def test_set_groupread(client: FlaskClient, tree: Account,
                       accounts: dict[str, Account]) -> None:
    """groupread=bob: bob reads the node (getNode, /files, synctrans) and carol does not;
    publicread=false alone leaves groupread as it is; groupread nil ends the sharing."""
    bob, carol = accounts["bob"], accounts["carol"]
    r = set_node(client, tree, "alice/d/a.bin", "DataNode", {"groupread": "bob"})
    assert r.status_code == 200, r.text
    assert props(assert_valid(r.data, NODE_XSD))["groupread"] == "bob"
    # A reader sees the node, not who else may read it.
    assert "groupread" not in props(get_node(client, "alice/d/a.bin", bob))
    assert client.get("/files/alice/d/a.bin", headers=bob.headers).data == CONTENT
    assert_fault(client.get("/vospace/nodes/alice/d/a.bin", headers=carol.headers), 404,
                 "NodeNotFound")
    assert client.get("/files/alice/d/a.bin", headers=carol.headers).status_code == 404

    r = set_node(client, tree, "alice/d/a.bin", "DataNode", {"publicread": "true"})
    r = set_node(client, tree, "alice/d/a.bin", "DataNode", {"publicread": "false"})
    assert r.status_code == 200, r.text
    assert props(assert_valid(r.data, NODE_XSD)).get("groupread") == "bob"
    assert client.get("/files/alice/d/a.bin", headers=bob.headers).status_code == 200

    r = set_node(client, tree, "alice/d/a.bin", "DataNode", {"groupread": "bob, carol"})
    assert props(assert_valid(r.data, NODE_XSD))["groupread"] == "bob carol"
    assert client.get("/files/alice/d/a.bin", headers=carol.headers).status_code == 200

    r = set_node(client, tree, "alice/d/a.bin", "DataNode", {"groupread": None})
    assert "groupread" not in props(assert_valid(r.data, NODE_XSD))
    assert client.get("/files/alice/d/a.bin", headers=bob.headers).status_code == 404
    r = set_node(client, tree, "alice/d/a.bin", "DataNode", {"groupread": "nosuchuser"})
    assert_fault(r, 400, "InvalidArgument")


def test_set_node_changes_one_node_unless_recursive(client: FlaskClient, tree: Account,
                                                    accounts: dict[str, Account]) -> None:
    """Without ?recursive=true, setNode on a folder leaves what is inside as it was; making
    a shared public folder non-public keeps each node's own readers, nothing more."""
    bob = accounts["bob"]
    r = set_node(client, tree, "alice/d", "ContainerNode", {"groupread": "bob"})
    assert r.status_code == 200, r.text
    assert client.get("/vospace/nodes/alice/d", headers=bob.headers).status_code == 200
    assert client.get("/files/alice/d/a.bin", headers=bob.headers).status_code == 404
    set_node(client, tree, "alice/d", "ContainerNode", {"publicread": "true"})
    r = set_node(client, tree, "alice/d", "ContainerNode", {"publicread": "false"})
    assert props(assert_valid(r.data, NODE_XSD)).get("groupread") == "bob"
    assert client.get("/files/alice/d/a.bin", headers=bob.headers).status_code == 404


def test_readers_cannot_change_or_write_into_a_node(client: FlaskClient, tree: Account,
                                                    accounts: dict[str, Account]) -> None:
    """A reader's setNode, createNode and push into the owner's folder are 403
    PermissionDenied, not 200 or a misleading 404."""
    bob = accounts["bob"]
    set_node(client, tree, "alice/d", "ContainerNode", {"publicread": "true"},
             recursive="true")
    r = set_node(client, bob, "alice/d/a.bin", "DataNode", {"publicread": "true"})
    assert_fault(r, 403, "PermissionDenied")
    node = (b'<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
            b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="vos:DataNode" '
            b'uri="vos://vocloud.local!vospace/alice/d/new.bin"/>')
    r = client.put("/vospace/nodes/alice/d/new.bin", data=node, headers=bob.headers,
                   content_type="text/xml")
    assert_fault(r, 403, "PermissionDenied")
    r = client.post("/vospace/synctrans", headers=bob.headers, query_string={
        "TARGET": "vos://vocloud.local!vospace/alice/d/new.bin",
        "DIRECTION": "pushToVoSpace", "PROTOCOL": "ivo://ivoa.net/vospace/core#httpput"})
    assert_fault(r, 403, "PermissionDenied")


def test_set_node_accepts_its_own_document(client: FlaskClient, tree: Account) -> None:
    """Posting back the getNode document works (read-only properties unchanged); changing a
    read-only property is 403 PermissionDenied (section 6.3.2, "setNode")."""
    r = client.get("/vospace/nodes/alice/d/b.txt", headers=tree.headers)
    doc = r.data.replace(b">false</vos:property>", b">true</vos:property>")
    r = client.post("/vospace/nodes/alice/d/b.txt", data=doc, headers=tree.headers)
    assert r.status_code == 200, r.text
    assert props(assert_valid(r.data, NODE_XSD))["publicread"] == "true"
    assert client.get("/files/alice/d/b.txt").data == b"hello"
    r = set_node(client, tree, "alice/d/b.txt", "DataNode", {"length": "1"})
    assert_fault(r, 403, "PermissionDenied")


def test_set_node_faults(client: FlaskClient, tree: Account,
                         accounts: dict[str, Account]) -> None:
    """Missing node 404 NodeNotFound, missing parent 404 ContainerNotFound, another type
    400, URI mismatch 400 InvalidURI, bob on alice's node 404, on her public node 403."""
    bob = accounts["bob"]
    assert_fault(set_node(client, tree, "alice/none", "DataNode", {"publicread": "true"}),
                 404, "NodeNotFound")
    assert_fault(set_node(client, tree, "alice/none/x", "DataNode", {"publicread": "true"}),
                 404, "ContainerNotFound")
    assert_fault(set_node(client, tree, "alice/d", "DataNode", {"publicread": "true"}),
                 400, "InvalidArgument")
    r = client.post("/vospace/nodes/alice/d", data=node_doc("alice/top.bin", "ContainerNode"),
                    headers=tree.headers)
    assert_fault(r, 400, "InvalidURI")
    assert_fault(set_node(client, bob, "alice/top.bin", "DataNode", {"publicread": "true"}),
                 404, "NodeNotFound")
    set_node(client, tree, "alice/top.bin", "DataNode", {"publicread": "true"})
    assert_fault(set_node(client, bob, "alice/top.bin", "DataNode", {"publicread": "false"}),
                 403, "PermissionDenied")
    r = client.post("/vospace/nodes/alice/top.bin",
                    data=node_doc("alice/top.bin", props={"publicread": "false"}))
    assert_fault(r, 401, "PermissionDenied")


# Transfers ----------------------------------------------------------------------------


def _sync(client: FlaskClient, account: Account | None, body: bytes):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "text/xml", **(account.headers if account else {})}
    return client.post("/vospace/synctrans", data=body, headers=headers)


def _details(client: FlaskClient, response: Any, account: Account | None) -> etree._Element:
    """Follow the 303 of a synchronous transfer document to its transferDetails."""
    assert response.status_code == 303, response.text
    location = response.headers["Location"]
    assert location.startswith(f"{PUBLIC}/vospace/transfers/")
    assert location.endswith("/results/transferDetails")
    r = client.get(location.removeprefix(PUBLIC), headers=account.headers if account else {})
    assert r.status_code == 200, r.text
    return assert_valid(r.data, "VOSpace-2.1.xsd")


def _endpoints(transfer: etree._Element) -> list[str]:
    return [p.findtext("vos:endpoint", namespaces=NS) or ""
            for p in transfer.findall("vos:protocol", NS)]


def test_push_then_get_node(client: FlaskClient, tree: Account) -> None:
    """pushToVoSpace with a transfer document (section 6.4.1, Example 2): 303 to the
    transferDetails with an httpput endpoint under /files; PUT the bytes there, and
    getNode shows their length and MD5."""
    r = _sync(client, tree, transfer_doc(uri("alice/d/new.bin", "~"), "pushToVoSpace",
                                         "httpsput", "httpput", view=CORE + "fits"))
    details = _details(client, r, tree)
    assert details.findtext("vos:target", namespaces=NS) == uri("alice/d/new.bin")
    assert details.findtext("vos:direction", namespaces=NS) == "pushToVoSpace"
    assert [p.get("uri") for p in details.findall("vos:protocol", NS)] == [CORE + "httpput"]
    [endpoint] = _endpoints(details)
    assert endpoint == f"{PUBLIC}/files/alice/d/new.bin"
    r = client.put(endpoint.removeprefix(PUBLIC), data=CONTENT[:1000], headers=tree.headers)
    assert r.status_code == 201, r.text
    p = props(get_node(client, "alice/d/new.bin", tree))
    assert p["length"] == "1000"
    assert p["MD5"] == hashlib.md5(CONTENT[:1000]).hexdigest()


def test_push_with_parameters(client: FlaskClient, tree: Account) -> None:
    """The parameter form (section 3.6.2) answers with the transfer document itself; a
    push replaces an existing file."""
    r = client.post("/vospace/synctrans", headers=tree.headers, query_string={
        "TARGET": uri("alice/top.bin"), "DIRECTION": "pushToVoSpace",
        "PROTOCOL": CORE + "httpput"})
    assert r.status_code == 200, r.text
    [endpoint] = _endpoints(assert_valid(r.data, "VOSpace-2.1.xsd"))
    assert client.put(endpoint.removeprefix(PUBLIC), data=b"new",
                      headers=tree.headers).status_code == 204
    assert props(get_node(client, "alice/top.bin", tree))["length"] == "3"


def test_pull(client: FlaskClient, tree: Account) -> None:
    """pullFromVoSpace: the document form (303, transferDetails), the parameter form
    (document in the body) and REQUEST=redirect (303 to the data); the endpoint gives the
    bytes, ranges included."""
    r = _sync(client, tree, transfer_doc(uri("alice/d/a.bin"), "pullFromVoSpace", "httpget"))
    [endpoint] = _endpoints(_details(client, r, tree))
    assert endpoint == f"{PUBLIC}/files/alice/d/a.bin"
    assert client.get(endpoint.removeprefix(PUBLIC), headers=tree.headers).data == CONTENT
    r = client.get(endpoint.removeprefix(PUBLIC), headers={**tree.headers, "Range": "bytes=0-9"})
    assert r.status_code == 206 and r.data == CONTENT[:10]

    params = {"TARGET": uri("alice/d/a.bin", "~"), "DIRECTION": "pullFromVoSpace",
              "PROTOCOL": CORE + "httpget"}
    r = client.get("/vospace/synctrans", query_string=params, headers=tree.headers)
    assert r.status_code == 200, r.text
    assert _endpoints(assert_valid(r.data, "VOSpace-2.1.xsd")) == [endpoint]
    r = client.post("/vospace/synctrans", data={**params, "REQUEST": "redirect"},
                    headers=tree.headers)
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == endpoint


def test_pull_of_a_folder_is_a_zip(client: FlaskClient, tree: Account) -> None:
    """A container's default view is a ZIP archive of it."""
    r = client.get("/vospace/synctrans", headers=tree.headers, query_string={
        "TARGET": uri("alice/d"), "DIRECTION": "pullFromVoSpace",
        "PROTOCOL": CORE + "httpget", "REQUEST": "redirect"})
    assert r.status_code == 303
    assert r.headers["Location"] == f"{PUBLIC}/files/alice/d/?format=zip"
    data = client.get(r.headers["Location"].removeprefix(PUBLIC), headers=tree.headers).data
    assert "sub/c.bin" in zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_anonymous_pull_of_public_data(client: FlaskClient, tree: Account) -> None:
    """Public nodes are pulled anonymously; private ones are 401 with a challenge."""
    params = {"TARGET": uri("alice/top.bin"), "DIRECTION": "pullFromVoSpace",
              "PROTOCOL": CORE + "httpget", "REQUEST": "redirect"}
    r = client.get("/vospace/synctrans", query_string=params)
    assert_fault(r, 401, "PermissionDenied")
    assert "WWW-Authenticate" in r.headers
    set_node(client, tree, "alice/top.bin", "DataNode", {"publicread": "true"})
    r = client.get("/vospace/synctrans", query_string=params)
    assert r.status_code == 303
    assert client.get(r.headers["Location"].removeprefix(PUBLIC)).data == b"top"
    r = _sync(client, None, transfer_doc(uri("alice/top.bin"), "pullFromVoSpace", "httpget"))
    assert _endpoints(_details(client, r, None)) == [f"{PUBLIC}/files/alice/top.bin"]


def test_security_methods(client: FlaskClient, tree: Account) -> None:
    """Section 5, "Access Control": securityMethod is echoed only when the client gave
    one, and only those the /files endpoints support; a protocol with none is left out."""
    basic = "ivo://ivoa.net/sso#BasicAA"
    cert = "ivo://ivoa.net/sso#tls-with-certificate"
    r = _sync(client, tree, transfer_doc(uri("alice/top.bin"), "pullFromVoSpace", "httpget",
                                         methods=(cert, basic)))
    details = _details(client, r, tree)
    methods = [m.get("uri") for m in details.findall("vos:protocol/vos:securityMethod", NS)]
    assert methods == [basic]
    r = _sync(client, tree, transfer_doc(uri("alice/top.bin"), "pullFromVoSpace", "httpget",
                                         methods=(cert,)))
    assert_fault(r, 400, "ProtocolNotSupported")


def test_transfer_faults(client: FlaskClient, tree: Account,
                         accounts: dict[str, Account]) -> None:
    """Faults come back directly with their status: a missing node or parent (404), an
    unsupported protocol, view or direction (400), a bad URI (400), an anonymous push
    (401), bob's push into alice's tree (404)."""
    bob = accounts["bob"]
    cases: list[tuple[bytes, Account | None, int, str]] = [
        (transfer_doc(uri("alice/none"), "pullFromVoSpace", "httpget"), tree, 404,
         "NodeNotFound"),
        (transfer_doc(uri("alice/none/x"), "pushToVoSpace", "httpput"), tree, 404,
         "ContainerNotFound"),
        (transfer_doc(uri("alice/top.bin/x"), "pushToVoSpace", "httpput"), tree, 404,
         "ContainerNotFound"),
        (transfer_doc(uri("alice/d"), "pushToVoSpace", "httpput"), tree, 400,
         "InvalidArgument"),
        (transfer_doc(uri("alice/x"), "pushToVoSpace", "httpget"), tree, 400,
         "ProtocolNotSupported"),
        (transfer_doc(uri("alice/x"), "pushToVoSpace", "httpsput"), tree, 400,
         "ProtocolNotSupported"),
        (transfer_doc(uri("alice/x"), "pushToVoSpace"), tree, 400, "ProtocolNotSupported"),
        (transfer_doc(uri("alice/top.bin"), "pullFromVoSpace", "httpget",
                      view=CORE + "votable"), tree, 400, "ViewNotSupported"),
        (transfer_doc(uri("alice/x"), "pushToVoSpace", "httpput", view=CORE + "defaultview"),
         tree, 400, "ViewNotSupported"),
        (transfer_doc(uri("alice/x"), "pullToVoSpace", "httpget"), tree, 400,
         "OperationNotSupported"),
        (transfer_doc(uri("alice/top.bin"), uri("alice/moved")), tree, 400,
         "OperationNotSupported"),
        (transfer_doc("vos://elsewhere!vospace/alice/x", "pullFromVoSpace", "httpget"), tree,
         400, "InvalidURI"),
        (transfer_doc(uri("alice/x"), "pushToVoSpace", "httpput"), None, 401,
         "PermissionDenied"),
        (transfer_doc(uri("alice/d/x"), "pushToVoSpace", "httpput"), bob, 404,
         "ContainerNotFound"),
        (DOCTYPE_BOMB.encode(), tree, 400, "InvalidArgument"),
    ]
    for body, account, status, fault in cases:
        assert_fault(_sync(client, account, body), status, fault)


def test_parameter_transfer_faults(client: FlaskClient, tree: Account) -> None:
    """Parameter form: TARGET, DIRECTION and exactly one PROTOCOL are required; only
    pushToVoSpace and pullFromVoSpace; REQUEST=redirect for pullFromVoSpace only."""
    base = {"TARGET": uri("alice/top.bin"), "DIRECTION": "pullFromVoSpace",
            "PROTOCOL": CORE + "httpget"}
    bad: list[dict[str, Any]] = [
        {k: v for k, v in base.items() if k != "PROTOCOL"},
        {**base, "PROTOCOL": [CORE + "httpget", CORE + "httpput"]},
        {**base, "DIRECTION": "pullToVoSpace"},
        {**base, "DIRECTION": "pushToVoSpace", "PROTOCOL": CORE + "httpput",
         "REQUEST": "redirect"},
        {**base, "REQUEST": "sometimes"},
    ]
    for query in bad:
        r = client.get("/vospace/synctrans", query_string=query, headers=tree.headers)
        assert_fault(r, 400, "InvalidArgument")


def test_transfer_details_belong_to_their_client(client: FlaskClient, tree: Account,
                                                 accounts: dict[str, Account]) -> None:
    """The transferDetails of alice's transfer: 401 anonymous, 404 for bob, 404 when the id
    has been tampered with."""
    r = _sync(client, tree, transfer_doc(uri("alice/top.bin"), "pullFromVoSpace", "httpget"))
    location = r.headers["Location"].removeprefix(PUBLIC)
    assert_fault(client.get(location), 401, "PermissionDenied")
    assert_fault(client.get(location, headers=accounts["bob"].headers), 404, "NotFoundFault")
    token = location.split("/")[3]
    forged = location.replace(token, token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB"))
    assert_fault(client.get(forged, headers=tree.headers), 404, "NotFoundFault")


# Service metadata -----------------------------------------------------------------------


_RESPONSE_TYPES = {"protocols": "GetProtocolsResponse", "views": "GetViewsResponse",
                   "properties": "GetPropertiesResponse"}


def _validate_metadata(tmp_path: Path, xml: bytes, name: str) -> etree._Element:
    """Validate a getProtocols/getViews/getProperties document against its VOSpace type.

    The REC schema declares the global ``vos:protocols`` (and ``views``, ``properties``)
    as plain lists, while section 6.1 and its ``Get*Response`` types have accepts and
    provides; the content is checked against the ``Get*Response`` type under a
    test-only root element.
    """
    schema = tmp_path / "metadata.xsd"
    elements = "".join(f'<xs:element name="{key}" type="vos:{value}"/>'
                       for key, value in _RESPONSE_TYPES.items())
    schema.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        f'xmlns:vos="{VOS}" targetNamespace="urn:test" elementFormDefault="qualified">'
        f'<xs:import namespace="{VOS}" '
        f'schemaLocation="{(XSD_DIR / "VOSpace-2.1.xsd").as_uri()}"/>{elements}</xs:schema>')
    doc = etree.fromstring(xml)
    assert doc.tag == f"{{{VOS}}}{name}"
    wrapped = etree.Element(f"{{urn:test}}{name}", nsmap={"vos": VOS})
    wrapped.extend(copy.deepcopy(list(doc)))
    etree.XMLSchema(etree.parse(str(schema))).assertValid(wrapped)
    return doc


def test_service_metadata(client: FlaskClient, tmp_path: Path) -> None:
    """getProtocols, getViews and getProperties (section 6.1), anonymous."""
    r = client.get("/vospace/protocols")
    assert r.status_code == 200
    doc = _validate_metadata(tmp_path, r.data, "protocols")
    assert [p.get("uri") for p in doc.findall("vos:provides/vos:protocol", NS)] == \
        [CORE + "httpget", CORE + "httpput"]
    r = client.get("/vospace/views")
    doc = _validate_metadata(tmp_path, r.data, "views")
    assert CORE + "anyview" in [v.get("uri") for v in doc.findall("vos:accepts/vos:view", NS)]
    r = client.get("/vospace/properties")
    doc = _validate_metadata(tmp_path, r.data, "properties")
    assert [p.get("uri") for p in doc.findall("vos:accepts/vos:property", NS)] == \
        [CORE + "publicread", CORE + "groupread"]


def test_no_html_errors(client: FlaskClient, accounts: dict[str, Account]) -> None:
    """Unknown routes and wrong methods under /vospace are text/plain, never HTML."""
    for r in (client.patch("/vospace/nodes/alice", headers=accounts["alice"].headers),
              client.put("/vospace/synctrans"),
              client.get("/vospace/transfers/x/results/other")):
        assert r.status_code in (404, 405)
        assert r.mimetype == "text/plain"


# Live ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vos_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """``vocloud serve`` without workers (VOSpace needs none), with the user alice."""
    service = start_service(tmp_path_factory.mktemp("vospace-live"), start_workers=False)
    try:
        service.add_account("alice")
        yield service
    finally:
        service.stop()


@pytest.mark.live
def test_live_push_and_pull_over_http(vos_live: LiveService) -> None:
    """A real HTTP client against ``vocloud serve``: createNode, pushToVoSpace through the
    303 to transferDetails, PUT, getNode, then pullFromVoSpace with REQUEST=redirect."""
    live = vos_live
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {live.accounts['alice'].token}"
    base = f"{live.url}/vospace"
    r = session.put(f"{base}/nodes/alice/vos-live",
                    data=node_doc("alice/vos-live", "ContainerNode"),
                    headers={"Content-Type": "text/xml"}, timeout=10)
    assert r.status_code in (201, 409), r.text
    r = session.post(f"{base}/synctrans", timeout=10, headers={"Content-Type": "text/xml"},
                     data=transfer_doc(uri("alice/vos-live/a.bin"), "pushToVoSpace", "httpput"))
    assert r.status_code == 200, r.text  # requests followed the 303
    assert r.url.endswith("/results/transferDetails")
    [endpoint] = _endpoints(assert_valid(r.content, "VOSpace-2.1.xsd"))
    assert endpoint.startswith(live.url + "/files/alice/vos-live/a.bin")
    assert session.put(endpoint, data=CONTENT, timeout=10).status_code in (201, 204)
    node = assert_valid(session.get(f"{base}/nodes/alice/vos-live/a.bin", timeout=10).content,
                        NODE_XSD)
    assert props(node)["MD5"] == hashlib.md5(CONTENT).hexdigest()
    r = session.get(f"{base}/synctrans", timeout=10, params={
        "TARGET": uri("alice/vos-live/a.bin"), "DIRECTION": "pullFromVoSpace",
        "PROTOCOL": CORE + "httpget", "REQUEST": "redirect"})
    assert r.status_code == 200 and r.content == CONTENT
