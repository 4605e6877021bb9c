"""``python -m diffusion_pansharpening.engine.models``: parameter counts of every model."""
from .. import registry
from . import build, describe

if __name__ == "__main__":
    for preset in (None, "tiny"):
        for arch in registry.names():
            print(f"== {arch} ({preset or 'default'} config, 4 bands)")
            print(describe(build(arch, preset)))
