"""No input file runs code: .prb geometry files are parsed, never executed (probeinterface's
``read_prb`` runs them with ``exec``). Real .prb files (written by probeinterface, and the
klusta style with ``range`` and names) read as probeinterface reads them; a .prb that would
create a file is a one-line error and creates nothing."""
from __future__ import annotations

import numpy as np
import probeinterface as pi
import pytest

from hybridkit.errors import SourceError
from hybridkit.formats.geometry import load_geometry

KLUSTA = '''"""A 2-shank klusta probe."""
total_nb_channels = 8
radius = 100
pitch = 20.0
shank0 = {
    'channels': list(range(4)),
    'graph': [(0, 1), (1, 2), (2, 3)],
    'geometry': {0: (0, 0), 1: (16, pitch), 2: (0, 2 * pitch), 3: (16, 3 * pitch)},
}
channel_groups = {
    0: shank0,
    1: {'channels': range(4, 8),
        'geometry': {4: (200, 0), 5: (216, pitch), 6: (200, -pitch / 2), 7: (216 + -1, 60)}},
}
'''


def _same_as_probeinterface(path):
    ours = load_geometry(path)
    theirs = pi.read_prb(path)  # trusted test files only: it exec()s them
    pos = np.concatenate([p.contact_positions for p in theirs.probes])
    wiring = np.concatenate([p.device_channel_indices for p in theirs.probes])
    np.testing.assert_array_equal(ours.positions, pos)
    np.testing.assert_array_equal(ours.wiring, wiring)
    return ours


def test_probeinterface_written_prb(tmp_path):
    a = pi.generate_linear_probe(num_elec=6, ypitch=20)
    a.set_device_channel_indices([5, 3, 1, 0, 2, 4])
    b = pi.generate_linear_probe(num_elec=3, ypitch=25)
    b.move([300, 0])
    b.set_device_channel_indices([6, 8, 7])
    group = pi.ProbeGroup()
    group.add_probe(a)
    group.add_probe(b)
    pi.write_prb(tmp_path / "p.prb", group)
    geom = _same_as_probeinterface(tmp_path / "p.prb")
    assert geom.positions.shape == (9, 2) and geom.probe.get_contact_count() == 9


def test_klusta_style_prb(tmp_path):
    (tmp_path / "k.prb").write_text(KLUSTA)
    geom = _same_as_probeinterface(tmp_path / "k.prb")
    assert geom.wiring.tolist() == list(range(8))
    assert geom.positions[6].tolist() == [200.0, -10.0] and geom.positions[7].tolist() == [215.0, 60.0]


@pytest.mark.parametrize("code, where", [
    ("import os\nos.system('touch {marker}')\n", "line 1: a statement other than 'name = value' (Import)"),
    ("channel_groups = __import__('os').system('touch {marker}')\n", "line 1"),
    ("channel_groups = {{0: {{'channels': [open('{marker}', 'w')], 'geometry': {{}}}}}}\n", "line 1"),
    ("x = [open('{marker}', 'w') for _ in range(1)]\n", "needs running code"),
    (("a = 1\nchannel_groups = {{0: {{'channels': [0], 'geometry': {{0: (0, 0)}}}}}}\n"
      "for i in range(1):\n    open('{marker}', 'w')\n"), "line 3: a statement other than 'name = value' (For)"),
    ("n = 10000000000\nn = n * n\n", "line 2: a whole number beyond"),
    ("channel_groups = np.load('{marker}')\n", "needs running code"),
    ("channel_groups = np.int64(open('{marker}', 'w'))\n", "needs running code"),
])
def test_prb_that_would_run_code_is_refused(tmp_path, code, where):
    marker = tmp_path / "MARKER"
    (tmp_path / "evil.prb").write_text(code.format(marker=marker))
    with pytest.raises(SourceError) as err:
        load_geometry(tmp_path / "evil.prb")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("recording.geometry: ") and where in msg, msg
    assert str(tmp_path / "evil.prb") in msg
    assert not marker.exists()


def test_prb_without_channel_groups(tmp_path):
    (tmp_path / "p.prb").write_text("radius = 100\n")
    with pytest.raises(SourceError, match="has no channel_groups dict"):
        load_geometry(tmp_path / "p.prb")
    (tmp_path / "p.prb").write_text("channel_groups = {0: {'channels': [0, 1], 'geometry': {0: (0, 0)}}}\n")
    with pytest.raises(SourceError, match=r"channel_groups\[0\] needs 'channels' and a 'geometry'"):
        load_geometry(tmp_path / "p.prb")
