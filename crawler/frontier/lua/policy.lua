-- Only the policy changes of the header (pauses and holds sent at once).
settle()
return 1
