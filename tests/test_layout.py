"""The package's shape (docs/architecture.md, "Layers"): imports flow one way, nothing imports
in a circle, every package is installed, and neither the library nor the tests load files
from tests/ or scripts/ by path; scripts do not edit sys.path."""

import ast
import os
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "depthsense_jax"

# Lowest first; a module may import its own layer and the layers below it, never above.
LAYERS = [
    ("base", ["_checks", "runtime", "_reduce", "_xla", "_tf", "errors", "storage", "viz",
              "workdir", "config"]),
    ("core", ["losses", "sampling", "metrics", "evaluator"]),
    ("models", ["models"]),
    ("data", ["data"]),
    ("params_io", ["params_io"]),
    ("train", ["train"]),
    ("inference", ["metric", "pointcloud", "onnx_export", "inference", "video"]),
    ("export", ["quantize", "tflite_export", "export"]),
    ("evaluation", ["evaluation"]),
    ("speed", ["speed"]),
    ("demo", ["demo"]),
    ("cli", ["cli"]),
]


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _layer(module: str) -> int | None:
    """Layer index of a depthsense_jax module (None for the package itself)."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    for index, (_, names) in enumerate(LAYERS):
        if parts[1] in names:
            return index
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add it")


def _imports(module: str, path: pathlib.Path) -> set[str]:
    """depthsense_jax modules that `module` imports anywhere (function bodies included)."""
    tree = ast.parse(path.read_text())
    found = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    return {name for name in found if name.split(".")[0] == "depthsense_jax"}


def _resolve(name: str, modules) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_imports_flow_one_way():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        own = _layer(module)
        if own is None:
            continue
        for target in _imports(module, path):
            resolved = _resolve(target, modules)
            layer = _layer(resolved) if resolved else None
            if layer is not None and layer > own:
                upward.append(f"{module} ({LAYERS[own][0]}) imports {resolved} "
                              f"({LAYERS[layer][0]})")
    assert not upward, "\n".join(sorted(upward))


def test_the_package_api_imports_only_the_core():
    imports = _imports("depthsense_jax", PACKAGE / "__init__.py") - {"depthsense_jax"}
    assert imports and {_layer(_resolve(name, _modules())) for name in imports} <= {0, 1}


def test_no_import_cycles():
    modules = _modules()
    edges = {m: set() for m in modules}
    for module, path in modules.items():
        for target in _imports(module, path):
            resolved = _resolve(target, modules)
            # A module's own parent packages run first anyway; they are no cycle.
            if resolved and resolved != module and not module.startswith(resolved + "."):
                edges[module].add(resolved)
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_the_layers_name_every_module():
    for module in _modules():
        _layer(module)


def test_every_package_is_installed():
    with open(ROOT / "pyproject.toml", "rb") as f:
        setuptools = tomllib.load(f)["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found | {"depthsense_jax.configs"} == listed, (found, listed)
    assert setuptools["package-dir"] == {"depthsense_jax.configs": "configs"}
    assert not (PACKAGE / "configs").exists()


def test_torch_is_imported_only_on_optional_paths():
    """torch (the [compare] extra) is imported at module level only by the plain-PyTorch
    peers (a family's `torch_peer`, the loss formulas of `speed --compare`), which nothing
    imports at module level; everywhere else only inside the functions that need it."""
    peers = {"depthsense_jax.models.torch_depthnet", "depthsense_jax.speed.torch_losses"}
    for module, path in _modules().items():
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
        if module in peers:
            continue
        assert not any(n == "torch" or n.startswith("torch.") for n in names), module
        assert not names & peers, f"{module} imports a PyTorch peer at module level"


def _python_files(*folders: str):
    for folder in folders:
        yield from (ROOT / folder).rglob("*.py")


def _loads_by_path(path: pathlib.Path) -> list[str]:
    """Calls that load Python files by path, and sys.path edits, in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("spec_from_file_location", "run_path", "SourceFileLoader"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
            if (name in ("insert", "append", "extend") and isinstance(func, ast.Attribute)
                    and ast.unparse(func.value) == "sys.path"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: sys.path.{name}")
    return found


def test_nothing_loads_files_from_tests_or_scripts_by_path():
    """The library never loads files from tests/ or scripts/ (it does load a user's config
    file by path: config.py, its one allowed place); tests do not load scripts; scripts
    neither edit sys.path nor load each other by path. What two of them share is library
    code (or test code)."""
    found = [f for f in _loads_by_path(PACKAGE / "config.py") if "spec_from" not in f]
    for path in _python_files("depthsense_jax", "tests", "scripts"):
        if path != PACKAGE / "config.py":
            found += _loads_by_path(path)
    text = "\n".join(p.read_text() for p in _python_files("depthsense_jax"))
    assert not found, found
    assert '"tests"' not in text and "'tests'" not in text  # no path built to tests/
    assert '"scripts"' not in text and "'scripts'" not in text


def test_scripts_do_not_extend_library_classes():
    """A script configures the library through its functions, never by appending to a class
    attribute (a TFDS builder's BUILDER_CONFIGS, say)."""
    for path in _python_files("scripts"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("append", "extend", "insert")
                    and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr.isupper()):
                raise AssertionError(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                     f"{ast.unparse(node.func)}")


def test_no_stray_files_at_the_top_of_the_package():
    allowed = {"__init__.py", "_checks.py", "runtime.py", "_reduce.py", "_xla.py", "_tf.py",
               "errors.py", "storage.py", "viz.py", "workdir.py", "config.py", "sampling.py",
               "metrics.py", "evaluator.py", "params_io.py", "inference.py", "video.py",
               "metric.py", "pointcloud.py",
               "export.py", "onnx_export.py", "quantize.py", "tflite_export.py", "demo.py"}
    files = {p.name for p in PACKAGE.glob("*.py")}
    assert files <= allowed, files - allowed
    assert not os.path.exists(PACKAGE / "torch_reference.py")
