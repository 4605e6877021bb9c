"""``python -m diffusion_pansharpening.engine.models``: parameter counts of every model."""
from . import ARCHITECTURES, build, describe

if __name__ == "__main__":
    for preset in (None, "tiny"):
        for arch in ARCHITECTURES:
            print(f"== {arch} ({preset or 'default'} config, 4 bands)")
            print(describe(build(arch, preset)))
