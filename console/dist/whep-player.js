import{a,b,c}from"./chunk-7A78D9B5.js";export{a as WhepError,b as playWhep,c as publishWhip};
