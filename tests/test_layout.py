"""The package's shape: imports flow one way (DESIGN.md, "Data flow"), nothing imports in a
circle, and every package is installed."""

import ast
import os
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "depthsense_jax"

# Lowest first; a module may import its own layer and the layers below it, never above.
LAYERS = [
    ("base", ["_checks", "_cpu_flags", "_reduce", "_xla", "_tf", "errors", "storage", "viz",
              "workdir",
              "config"]),
    ("core", ["losses", "sampling", "metrics"]),
    ("models", ["models"]),
    ("data", ["data"]),
    ("params_io", ["params_io"]),
    ("train", ["train"]),
    ("inference", ["inference", "video"]),
    ("export", ["onnx_export", "export"]),
    ("evaluation", ["evaluation"]),
    ("bench", ["bench"]),
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


def test_no_pytorch_model_in_the_library():
    """The plain-PyTorch reference model lives in tests/reference (bench --compare loads it
    from there): no package module builds torch modules. (torch itself is imported only on
    optional paths: reading a .pth, timing the references.)"""
    for module, path in _modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("torch.nn") for n in names), f"{module}: {names}"


def test_no_stray_files_at_the_top_of_the_package():
    allowed = {"__init__.py", "_checks.py", "_cpu_flags.py", "_reduce.py", "_xla.py", "_tf.py",
               "errors.py", "storage.py",
               "viz.py", "workdir.py", "config.py", "sampling.py", "metrics.py",
               "params_io.py", "inference.py", "video.py", "export.py", "onnx_export.py",
               "demo.py"}
    files = {p.name for p in PACKAGE.glob("*.py")}
    assert files <= allowed, files - allowed
    assert not os.path.exists(PACKAGE / "torch_reference.py")
