import assert from "node:assert/strict";
import {
  debianMirror,
  parseDeb822Sources,
  parseSourcesList,
  systemAptSources,
} from "../../src/criu/apt_sources.ts";

Deno.test("deb822 sources yield URIs, suites and keyrings; deb-src and disabled stanzas are skipped", () => {
  const text = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
Enabled: no
URIs: http://off.example/debian
Suites: bookworm

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`;
  const sources = parseDeb822Sources(text);
  assert.deepEqual(sources.map((s) => s.uri), [
    "http://deb.debian.org/debian",
    "http://deb.debian.org/debian-security",
  ]);
  assert.deepEqual(sources[0].suites, ["bookworm", "bookworm-updates"]);
  assert.equal(sources[0].signedBy, "/usr/share/keyrings/debian-archive-keyring.gpg");
  assert.equal(debianMirror(sources)?.uri, "http://deb.debian.org/debian");
});

Deno.test("one-line sources.list: options, comments and the security archive", () => {
  const sources = parseSourcesList(`# comment
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main # tail
deb-src http://mirror.example/debian bookworm main
`);
  assert.equal(sources.length, 2);
  assert.equal(sources[1].signedBy, "/k.gpg");
  assert.equal(debianMirror(sources)?.uri, "http://mirror.example/debian");
  assert.equal(debianMirror(sources.slice(0, 1)), undefined);
});

Deno.test("the system's own apt sources name a Debian mirror", () => {
  const mirror = debianMirror(systemAptSources());
  assert.ok(mirror, "no deb source in /etc/apt: doctor --fix could not find a mirror here");
  assert.match(mirror.uri, /^https?:\/\//);
});
