"""The stage cards' fields, ready-made so the window can paint them before pydantic loads.

Generated from the pipeline models by `make cards` (tools/card_table.py): do not edit.
tests/gui/test_card_table.py fails when this file is out of date.
"""

from stablenew.controller.field_spec import FieldSpec

#: card section → its fields, in the order the card shows them
SECTIONS: dict[str, tuple[FieldSpec, ...]] = {
    'txt2img': (
        FieldSpec(path='txt2img.enabled', name='enabled', title='Text to image', description='', kind='bool', default=True),
        FieldSpec(path='txt2img.prompt', name='prompt', title='Prompt', description='What you want to see.', kind='text', default=''),
        FieldSpec(path='txt2img.negative_prompt', name='negative_prompt', title='Negative prompt', description='What you do not want to see.', kind='text', default=''),
        FieldSpec(path='txt2img.checkpoint', name='checkpoint', title='Model', description='Checkpoint to use (empty: the one the server has loaded).', kind='str', default=''),
        FieldSpec(path='txt2img.family', name='family', title='Model family', description='Decides how the model is loaded and which settings apply (Flux: guidance instead of CFG, no negative prompt). From the model: told by its name.', kind='choice', default='auto', choices=('auto', 'sd15', 'sdxl', 'pony', 'illustrious', 'flux', 'sd35'), choice_labels=('From the model', 'SD 1.5', 'SDXL', 'Pony', 'Illustrious', 'Flux.1', 'SD 3.5')),
        FieldSpec(path='txt2img.sampler', name='sampler', title='Sampler', description='', kind='str', default='DPM++ 2M'),
        FieldSpec(path='txt2img.scheduler', name='scheduler', title='Scheduler', description="Noise schedule (Automatic: the sampler's default).", kind='str', default='Karras'),
        FieldSpec(path='txt2img.steps', name='steps', title='Steps', description='More steps: more detail, slower. 20–30 is typical.', kind='int', default=20, minimum=1, maximum=150),
        FieldSpec(path='txt2img.cfg_scale', name='cfg_scale', title='CFG scale', description='How strictly to follow the prompt. 5–8 is typical.', kind='float', default=7.0, minimum=1.0, maximum=30.0),
        FieldSpec(path='txt2img.guidance', name='guidance', title='Guidance', description="Flux only: how strictly to follow the prompt (Forge's Distilled CFG). 2–4 is typical; CFG stays at 1.", kind='float', default=3.5, minimum=0.0, maximum=30.0),
        FieldSpec(path='txt2img.width', name='width', title='Width', description='', kind='int', default=512, minimum=64, maximum=4096, multiple_of=8),
        FieldSpec(path='txt2img.height', name='height', title='Height', description='', kind='int', default=512, minimum=64, maximum=4096, multiple_of=8),
        FieldSpec(path='txt2img.seed', name='seed', title='Seed', description='-1 picks a random seed; the one used is recorded in the image.', kind='int', default=-1, minimum=-1, maximum=4294967295),
        FieldSpec(path='txt2img.batch_size', name='batch_size', title='Batch size', description='Images made together in one go (uses more VRAM).', kind='int', default=1, minimum=1, maximum=8),
        FieldSpec(path='txt2img.batch_count', name='batch_count', title='Batch count', description='How many batches to make one after another.', kind='int', default=1, minimum=1, maximum=100),
        FieldSpec(path='txt2img.clip_skip', name='clip_skip', title='Clip skip', description='Skip the last CLIP layers; 2 suits many anime models.', kind='int', default=1, minimum=1, maximum=12),
        FieldSpec(path='txt2img.vae', name='vae', title='VAE', description='Flux only: the VAE file (empty: the usual one, ae.safetensors).', kind='str', default=''),
        FieldSpec(path='txt2img.text_encoder', name='text_encoder', title='Text encoder (CLIP-L)', description='Flux only: the CLIP-L text encoder file (empty: the usual one).', kind='str', default=''),
        FieldSpec(path='txt2img.text_encoder_2', name='text_encoder_2', title='Text encoder (T5)', description='Flux only: the T5-XXL text encoder file (empty: the usual one; an fp8 one needs less memory).', kind='str', default=''),
    ),
    'txt2img.hires': (
        FieldSpec(path='txt2img.hires.enabled', name='enabled', title='Hires fix', description='Render small, then upscale and refine in a second pass.', kind='bool', default=False),
        FieldSpec(path='txt2img.hires.upscaler', name='upscaler', title='Hires upscaler', description='How the first image is enlarged before the second pass.', kind='str', default='Latent'),
        FieldSpec(path='txt2img.hires.scale', name='scale', title='Hires scale', description='How much larger the final image is than the first pass.', kind='float', default=2.0, minimum=1.0, maximum=4.0),
        FieldSpec(path='txt2img.hires.resize_width', name='resize_width', title='Hires target width', description='Exact final width instead of a scale (0: use scale).', kind='int', default=0, minimum=0, maximum=8192),
        FieldSpec(path='txt2img.hires.resize_height', name='resize_height', title='Hires target height', description='Exact final height instead of a scale (0: use scale).', kind='int', default=0, minimum=0, maximum=8192),
        FieldSpec(path='txt2img.hires.steps', name='steps', title='Hires steps', description='Steps of the second pass (0: same as the first).', kind='int', default=0, minimum=0, maximum=150),
        FieldSpec(path='txt2img.hires.denoise', name='denoise', title='Hires denoise', description='How much the second pass may change — lower keeps more of the first image.', kind='float', default=0.45, minimum=0.0, maximum=1.0),
    ),
    'txt2img.refiner': (
        FieldSpec(path='txt2img.refiner.enabled', name='enabled', title='Refiner', description='Hand the last steps to a second model (SDXL refiner).', kind='bool', default=False),
        FieldSpec(path='txt2img.refiner.checkpoint', name='checkpoint', title='Refiner model', description='', kind='str', default=''),
        FieldSpec(path='txt2img.refiner.switch_at', name='switch_at', title='Switch at', description='Fraction of the steps after which the refiner takes over.', kind='float', default=0.8, minimum=0.01, maximum=1.0),
    ),
    'img2img': (
        FieldSpec(path='img2img.enabled', name='enabled', title='Image to image', description='Redraw the image from the previous stage (or your input).', kind='bool', default=False),
        FieldSpec(path='img2img.denoise', name='denoise', title='Denoise', description='How much the image may change — lower keeps more of the original.', kind='float', default=0.5, minimum=0.0, maximum=1.0),
        FieldSpec(path='img2img.steps', name='steps', title='Steps', description='', kind='int', default=20, minimum=1, maximum=150),
        FieldSpec(path='img2img.cfg_scale', name='cfg_scale', title='CFG scale', description='', kind='float', default=7.0, minimum=1.0, maximum=30.0),
        FieldSpec(path='img2img.sampler', name='sampler', title='Sampler', description='', kind='str', default='DPM++ 2M'),
        FieldSpec(path='img2img.scheduler', name='scheduler', title='Scheduler', description='', kind='str', default='Karras'),
        FieldSpec(path='img2img.resize_mode', name='resize_mode', title='Resize mode', description='', kind='choice', default='just_resize', choices=('just_resize', 'crop_and_resize', 'resize_and_fill', 'latent_upscale'), choice_labels=('Just resize', 'Crop and resize', 'Resize and fill', 'Just resize (latent upscale)')),
        FieldSpec(path='img2img.prompt_override', name='prompt_override', title='Prompt override', description='Use a different prompt here (empty: the main prompt).', kind='text', default=''),
        FieldSpec(path='img2img.negative_override', name='negative_override', title='Negative prompt override', description='', kind='text', default=''),
        FieldSpec(path='img2img.init_image', name='init_image', title='Init image', description="The picture to start from when Text to image is off (the gallery's “Use as init image” fills it in).", kind='str', default=''),
    ),
    'adetailer': (
        FieldSpec(path='adetailer.enabled', name='enabled', title='ADetailer', description='Find faces or hands and redraw them in more detail.', kind='bool', default=False),
    ),
    'adetailer.passes.0': (
        FieldSpec(path='adetailer.passes.0.enabled', name='enabled', title='First pass', description='Run the first detector. Off skips this pass only: the second and any later pass still run in their own places.', kind='bool', default=True),
        FieldSpec(path='adetailer.passes.0.model', name='model', title='Detector', description='What to find and fix: faces, hands or people.', kind='str', default='face_yolov8n.pt'),
        FieldSpec(path='adetailer.passes.0.prompt', name='prompt', title='Detail prompt', description='Empty: the main prompt.', kind='text', default=''),
        FieldSpec(path='adetailer.passes.0.negative_prompt', name='negative_prompt', title='Detail negative prompt', description='', kind='text', default=''),
        FieldSpec(path='adetailer.passes.0.confidence', name='confidence', title='Confidence', description='Only fix detections at least this sure.', kind='float', default=0.3, minimum=0.0, maximum=1.0),
        FieldSpec(path='adetailer.passes.0.mask_blur', name='mask_blur', title='Mask blur', description='', kind='int', default=4, minimum=0, maximum=64),
        FieldSpec(path='adetailer.passes.0.denoise', name='denoise', title='Detail denoise', description='How much each detected area may change.', kind='float', default=0.4, minimum=0.0, maximum=1.0),
        FieldSpec(path='adetailer.passes.0.inpaint_only_masked', name='inpaint_only_masked', title='Inpaint only masked', description='', kind='bool', default=True),
        FieldSpec(path='adetailer.passes.0.inpaint_padding', name='inpaint_padding', title='Inpaint padding', description='', kind='int', default=32, minimum=0, maximum=256),
    ),
    'adetailer.passes.1': (
        FieldSpec(path='adetailer.passes.1.enabled', name='enabled', title='Second pass', description='Run a second detector after the first, e.g. hands after faces. Off skips this pass only: a third pass loaded from a preset or an image still runs.', kind='bool', default=False),
        FieldSpec(path='adetailer.passes.1.model', name='model', title='Detector', description='What to find and fix: faces, hands or people.', kind='str', default='hand_yolov8n.pt'),
        FieldSpec(path='adetailer.passes.1.prompt', name='prompt', title='Detail prompt', description='Empty: the main prompt.', kind='text', default=''),
        FieldSpec(path='adetailer.passes.1.negative_prompt', name='negative_prompt', title='Detail negative prompt', description='', kind='text', default=''),
        FieldSpec(path='adetailer.passes.1.confidence', name='confidence', title='Confidence', description='Only fix detections at least this sure.', kind='float', default=0.3, minimum=0.0, maximum=1.0),
        FieldSpec(path='adetailer.passes.1.mask_blur', name='mask_blur', title='Mask blur', description='', kind='int', default=4, minimum=0, maximum=64),
        FieldSpec(path='adetailer.passes.1.denoise', name='denoise', title='Detail denoise', description='How much each detected area may change.', kind='float', default=0.4, minimum=0.0, maximum=1.0),
        FieldSpec(path='adetailer.passes.1.inpaint_only_masked', name='inpaint_only_masked', title='Inpaint only masked', description='', kind='bool', default=True),
        FieldSpec(path='adetailer.passes.1.inpaint_padding', name='inpaint_padding', title='Inpaint padding', description='', kind='int', default=32, minimum=0, maximum=256),
    ),
    'upscale': (
        FieldSpec(path='upscale.enabled', name='enabled', title='Upscale', description='Enlarge the finished image with an upscaler model.', kind='bool', default=False),
        FieldSpec(path='upscale.upscaler', name='upscaler', title='Upscaler', description='', kind='str', default='R-ESRGAN 4x+'),
        FieldSpec(path='upscale.scale', name='scale', title='Upscale factor', description='', kind='float', default=2.0, minimum=0.0, maximum=8.0, exclusive_minimum=True),
        FieldSpec(path='upscale.target_width', name='target_width', title='Target width', description='Exact width instead of a factor (0: use the factor).', kind='int', default=0, minimum=0, maximum=16384),
        FieldSpec(path='upscale.target_height', name='target_height', title='Target height', description='', kind='int', default=0, minimum=0, maximum=16384),
        FieldSpec(path='upscale.upscaler_2', name='upscaler_2', title='Second upscaler', description='', kind='str', default='None'),
        FieldSpec(path='upscale.upscaler_2_visibility', name='upscaler_2_visibility', title='Second upscaler visibility', description='', kind='float', default=0.0, minimum=0.0, maximum=1.0),
    ),
}

#: fields whose choices come from the connected server (a picker, not a text box)
PICKERS = frozenset({
    'adetailer.passes.0.model',
    'adetailer.passes.1.model',
    'img2img.sampler',
    'img2img.scheduler',
    'txt2img.checkpoint',
    'txt2img.hires.upscaler',
    'txt2img.refiner.checkpoint',
    'txt2img.sampler',
    'txt2img.scheduler',
    'txt2img.text_encoder',
    'txt2img.text_encoder_2',
    'txt2img.vae',
    'upscale.upscaler',
    'upscale.upscaler_2',
})
