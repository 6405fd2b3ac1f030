"""The host's APT configuration is read, never a host name written into the code."""

from ansible_collections.mec.migration.plugins.module_utils import apt_sources


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_deb822_sources_give_the_release_archive_not_security(tmp_path):
    write(tmp_path, "sources.list.d/debian.sources",
          "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
          "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n"
          "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    assert apt_sources.debian_archive(str(tmp_path), codename="bookworm") == "http://mirror.example/debian"


def test_one_line_entries_with_options_and_comments(tmp_path):
    write(tmp_path, "sources.list",
          "# deb http://old.example/debian bookworm main\n"
          "deb [arch=amd64 signed-by=/k.gpg] http://archive.example/debian bookworm main contrib\n"
          "deb http://archive.example/debian-security bookworm-security main\n")
    entries = apt_sources.apt_entries(str(tmp_path))
    assert entries[0] == {"uri": "http://archive.example/debian", "suites": ["bookworm"],
                          "components": ["main", "contrib"]}
    assert apt_sources.debian_archive(str(tmp_path), codename="bookworm") == "http://archive.example/debian"


def test_a_third_party_repository_without_main_is_not_taken(tmp_path):
    write(tmp_path, "sources.list.d/vendor.list", "deb https://vendor.example/apt stable contrib\n")
    write(tmp_path, "sources.list.d/debian.sources",
          "Types: deb\nURIs: http://a.example/debian\nSuites: trixie\nComponents: main\n")
    assert apt_sources.debian_archive(str(tmp_path), codename="trixie") == "http://a.example/debian"


def test_disabled_stanza_and_no_archive(tmp_path):
    write(tmp_path, "sources.list.d/debian.sources",
          "Enabled: no\nTypes: deb\nURIs: http://a.example/debian\nSuites: trixie\nComponents: main\n")
    assert apt_sources.debian_archive(str(tmp_path), codename="trixie") is None


def test_codename_from_os_release(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n')
    assert apt_sources.host_codename(str(release)) == "bookworm"
    assert apt_sources.host_codename(str(tmp_path / "missing")) is None
