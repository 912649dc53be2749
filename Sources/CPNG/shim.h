#include <png.h>

// The simplified-API constants are macros Swift cannot import; these name them.
static inline unsigned int xai_png_image_version(void) { return PNG_IMAGE_VERSION; }
static inline unsigned int xai_png_format_rgb(void) { return PNG_FORMAT_RGB; }
static inline unsigned int xai_png_flag_fast(void) { return PNG_IMAGE_FLAG_FAST; }
static inline unsigned int xai_png_format_rgba(void) { return PNG_FORMAT_RGBA; }
static inline unsigned int xai_png_format_rgba_linear(void) { return PNG_FORMAT_RGBA | PNG_FORMAT_FLAG_LINEAR; }
static inline unsigned int xai_png_flag_linear(void) { return PNG_FORMAT_FLAG_LINEAR; }
