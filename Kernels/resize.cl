// resize
