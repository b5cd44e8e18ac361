"""AttenCraft (arXiv 2405.17965): attention-guided multi-concept customization of Stable Diffusion.

Pure algorithm: tensors and images in, tensors and images out. Never reads the environment and never imports
the service or the worker.
"""
