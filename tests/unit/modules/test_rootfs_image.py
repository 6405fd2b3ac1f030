from unittest import mock

from docker.errors import NotFound

from ansible_collections.mec.migration.plugins.modules import rootfs_image

ARGS = {"name": "mec-lab/base:bookworm", "include": ["ca-certificates"], "mirror": "http://archive.example/debian",
        "labels": {"mec.migration.lab.image": "true"}}


def params(**over):
    p = {"suite": "bookworm", "variant": "minbase", "include": ["ca-certificates"], "components": ["main"],
         "changes": [], "labels": {"mec.migration.lab.image": "true"}}
    p.update(over)
    return p


def test_recipe_changes_with_packages_and_not_with_their_order():
    base = rootfs_image.recipe_hash(params(include=["a", "b"]), "http://m/debian")
    assert base == rootfs_image.recipe_hash(params(include=["b", "a"]), "http://m/debian")
    assert base != rootfs_image.recipe_hash(params(include=["a"]), "http://m/debian")
    assert base != rootfs_image.recipe_hash(params(include=["a", "b"]), "http://other/debian")


def test_image_with_the_same_recipe_is_reused(run_module, client, run_command):
    recipe = rootfs_image.recipe_hash(params(), ARGS["mirror"])
    client.images.get.return_value = mock.Mock(id="sha256:base", labels={rootfs_image.RECIPE_LABEL: recipe},
                                               attrs={"Size": 123})
    with mock.patch.object(rootfs_image, "get_client", return_value=client):
        result = run_module(rootfs_image, ARGS)
    run_command.assert_not_called()
    client.api.import_image_from_file.assert_not_called()
    assert result == {"changed": False, "recipe": recipe, "mirror": ARGS["mirror"], "image_id": "sha256:base",
                      "size": 123}


def test_missing_image_is_bootstrapped_and_imported_with_its_recipe_label(run_module, client, run_command):
    built = mock.Mock(id="sha256:new", labels={}, attrs={"Size": 99})
    client.images.get.side_effect = [NotFound("none"), built]
    with mock.patch.object(rootfs_image, "get_client", return_value=client):
        result = run_module(rootfs_image, dict(ARGS, workdir="/tmp"))
    debootstrap = run_command.call_args_list[0].args[0]
    root = debootstrap[-2]
    assert debootstrap == ["/usr/bin/debootstrap", "--variant=minbase", "--components=main",
                           "--include=ca-certificates", "bookworm", root, "http://archive.example/debian"]
    tar = run_command.call_args_list[1].args[0]
    assert tar[:4] == ["/usr/bin/tar", "--numeric-owner", "-C", root]
    kwargs = client.api.import_image_from_file.call_args.kwargs
    assert (kwargs["repository"], kwargs["tag"]) == ("mec-lab/base", "bookworm")
    assert kwargs["changes"] == ['LABEL mec.migration.lab.image="true"',
                                 'LABEL mec.migration.recipe="%s"' % result["recipe"]]
    assert result["changed"] is True and result["image_id"] == "sha256:new"
    assert set(result["durations"]) == {"debootstrap", "import"}
