from ._r2unet import (
    Model as Model,
    load as load,
    metrics as metrics,
    output_stem as output_stem,
    precision as precision,
    read_image_file as read_image,
    read_mask_file as read_mask,
    set_precision as set_precision,
    shipped_models as shipped_models,
    train as train,
)

__version__: str
