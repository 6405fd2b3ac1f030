"""image_layers_info: the chain IDs of every image's layer stacks, read only."""
from ansible_collections.mec.migration.plugins.module_utils import images
from ansible_collections.mec.migration.plugins.modules import image_layers_info
from .test_image_layers import D1, D2, D3


def test_lists_chain_ids(run_module, client):
    client.api.images.return_value = ["i1", "i2"]
    client.api.inspect_image.side_effect = lambda ref: {"RootFS": {"Layers": {"i1": [D1], "i2": [D2, D3]}[ref]}}
    result = run_module(image_layers_info, {})
    assert result["changed"] is False
    assert result["chain_ids"] == sorted([D1, D2] + images.chain_ids([D2, D3])[1:])
