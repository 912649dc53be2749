// mask
