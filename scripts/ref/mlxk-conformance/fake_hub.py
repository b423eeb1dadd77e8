#!/usr/bin/env python3
"""A tiny offline stand-in for the Hugging Face Hub, for pull/clone recordings.

Serves the repos that build_fixture.py writes under ROOT/fakehub/ORG/NAME with
the part of the hub protocol that huggingface_hub's snapshot_download and
tanto's puller use:
  GET  /api/models/ORG/NAME[/revision/REV]   repo info: sha + siblings
  GET  /api/models/ORG/NAME/tree/REV[/PATH]  file listing
  HEAD /ORG/NAME/resolve/REV/FILE            X-Repo-Commit, ETag, Content-Length
  GET  /ORG/NAME/resolve/REV/FILE            the bytes
Unknown repos answer 404 with X-Error-Code: RepoNotFound, like the hub.
The commit of tiny-org/tiny-llama-chat is the one the fixture cache holds as
refs/main, so cloning from this hub and cloning from the cache copy the same
snapshot. Standard library only.

Usage: fake_hub.py ROOT PORT_FILE   (binds 127.0.0.1:0, writes the port, serves)
"""

import hashlib
import json
import os
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_fixture  # noqa: E402

COMMITS = {
    "tiny-org/tiny-llama-chat": build_fixture.commit_hash("chat-new"),
    "remote-org/remote-model": build_fixture.commit_hash("remote-model"),
}


def files_of(root, repo):
    top = os.path.join(root, "fakehub", repo)
    out = {}
    for dirpath, _, names in os.walk(top):
        for n in names:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, top).replace(os.sep, "/")] = p
    return out


is_lfs = build_fixture.is_lfs


def git_sha1(data):
    return build_fixture.etag("x", data)


class Handler(BaseHTTPRequestHandler):
    root = "."

    def log_message(self, *a):  # quiet
        pass

    def _send(self, code, body=b"", headers=None, head=False):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, code, obj, head=False):
        self._send(code, json.dumps(obj).encode(), {"Content-Type": "application/json"}, head)

    def _not_found(self, head=False):
        self._send(404, b'{"error":"Repository not found"}',
                   {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"}, head)

    def _info(self, repo, rel_files):
        sib = []
        for rel, p in sorted(rel_files.items()):
            data = open(p, "rb").read()
            s = {"rfilename": rel, "size": len(data), "blobId": git_sha1(data)}
            if is_lfs(rel):
                s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            sib.append(s)
        org, name = repo.split("/", 1)
        return {
            "_id": hashlib.md5(repo.encode()).hexdigest()[:24], "id": repo, "modelId": repo,
            "author": org, "sha": COMMITS[repo], "lastModified": "2024-06-01T12:00:00.000Z",
            "private": False, "gated": False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": [], "library_name": "transformers", "siblings": sib,
            "createdAt": "2024-06-01T12:00:00.000Z", "usedStorage": sum(x["size"] for x in sib),
        }

    def _route(self, head):
        path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 4 and parts[0] == "api" and parts[1] == "models":
            repo = parts[2] + "/" + parts[3]
            if repo not in COMMITS:
                return self._not_found(head)
            fl = files_of(self.root, repo)
            rest = parts[4:]
            if not rest or rest[0] == "revision":
                return self._json(200, self._info(repo, fl), head)
            if rest[0] == "tree":
                sub = "/".join(rest[2:])
                items = []
                for rel, p in sorted(fl.items()):
                    if sub and not rel.startswith(sub + "/"):
                        continue
                    data = open(p, "rb").read()
                    it = {"type": "file", "path": rel, "size": len(data), "oid": git_sha1(data)}
                    if is_lfs(rel):
                        it["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                    items.append(it)
                return self._json(200, items, head)
            return self._not_found(head)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = parts[0] + "/" + parts[1]
            if repo not in COMMITS:
                return self._not_found(head)
            rel = "/".join(parts[4:])
            fl = files_of(self.root, repo)
            if rel not in fl:
                return self._send(404, b'{"error":"Entry not found"}', {"X-Error-Code": "EntryNotFound"}, head)
            data = open(fl[rel], "rb").read()
            h = {"X-Repo-Commit": COMMITS[repo], "Content-Type": "application/octet-stream",
                 "Accept-Ranges": "bytes"}
            if is_lfs(rel):
                e = hashlib.sha256(data).hexdigest()
                h["X-Linked-Etag"] = '"%s"' % e
                h["X-Linked-Size"] = str(len(data))
                h["ETag"] = '"%s"' % e
            else:
                h["ETag"] = '"%s"' % git_sha1(data)
            return self._send(200, data, h, head)
        return self._not_found(head)

    def do_GET(self):
        self._route(False)

    def do_HEAD(self):
        self._route(True)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    Handler.root = os.path.abspath(sys.argv[1])
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, sys.argv[2])
    srv.serve_forever()


if __name__ == "__main__":
    main()
