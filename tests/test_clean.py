"""python -m arc_exp.tracking.clean: the checkpoints of runs that a newer run of their arm (and seed) supersedes are
listed with their size, and removed with --remove; the newest of each arm and runs outside an arm are kept."""
import time

from arc_exp.tracking import clean


def test_superseded_checkpoints_are_listed_then_removed(tmp_path, capsys):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("arc_exp-smoke")
    folders = {}
    for name, arm, seed in (("old", "iter12_smoke/base", "0"), ("other_seed", "iter12_smoke/base", "1"),
                            ("new", "iter12_smoke/base", "0"), ("lone", "iter12_smoke/r16", "0"),
                            ("no_arm", "None", "0")):
        folder = tmp_path / name
        (folder / "checkpoints" / "step-000002").mkdir(parents=True)
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"x" * 1000)
        (folder / "checkpoints" / "step-000002" / "adapter_model.safetensors").write_bytes(b"x" * 500)
        run = client.create_run(experiment, tags={"run_type": "training", "experiment": "iter12",
                                                  "choice/arm": arm, "output_dir": str(folder)})
        client.log_param(run.info.run_id, "seed", seed)
        client.set_terminated(run.info.run_id)
        folders[name] = (folder, run.info.run_id)
        time.sleep(0.01)  # distinct start times: the newest is the last created
    found = clean.superseded_checkpoints(uri)
    assert [(f.run_id, f.arm, f.size, f.newest) for f in found] == [
        (folders["old"][1], "iter12 iter12_smoke/base seed=0", 1500, folders["new"][1])]
    assert clean.main(["--tracking-uri", uri]) == 0
    old = folders["old"][1][:8]
    assert capsys.readouterr().out.splitlines() == [
        f"{old}        0.0 MB  iter12 iter12_smoke/base seed=0 (newest: {folders['new'][1][:8]})  "
        f"{folders['old'][0]}/checkpoints",
        "total: 0.0 MB in 1 runs; --remove deletes them"]
    assert clean.main(["--tracking-uri", uri, "--remove"]) == 0
    assert not (folders["old"][0] / "checkpoints").exists()
    assert all((folders[n][0] / "checkpoints" / "last.ckpt").exists() for n in ("other_seed", "new", "lone", "no_arm"))
    assert client.get_run(folders["old"][1]).data.tags["checkpoints_removed"] == "true"
    assert clean.superseded_checkpoints(uri) == []
